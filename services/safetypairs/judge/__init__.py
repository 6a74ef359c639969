"""The judge service: a vision-language model that rates images against a written policy and
proposes the smallest edit that flips an image's rating."""
