"""Sample quality: the Evaluator with its real-data floors, the metric maths (metrics/), and the training hook."""
