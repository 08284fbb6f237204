"""What the end-to-end sections share: inputs, load clients, gateway processes, /proc figures.

Not sections themselves (the runner discovers only bench/*.py).
"""
