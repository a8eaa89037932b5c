"""Operators (torch only): involution, C-volution, SCC, SCConv and convolutional sparse coding."""
