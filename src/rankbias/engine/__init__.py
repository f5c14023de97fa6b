"""rankbias.engine: training and measuring (layer 2).

Data sets, nets, losses, dynamics (GD / SGD / gradient flow), the batched
ensemble trainer, metrics at log points, geometry of trained nets and device
placement.  Nothing here knows a matrix or a store.
"""
