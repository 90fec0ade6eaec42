"""Pure pieces of the GAN maths: losses on D's outputs, gradient penalties, DiffAugment, G's weight EMA, labels."""
