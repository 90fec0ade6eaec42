"""Reading runs back for people: the HTML report pages with their SVG charts, run comparisons, GIFs."""
