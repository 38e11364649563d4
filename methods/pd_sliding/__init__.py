"""Decentralised primal-dual sliding with CGS inner loop (arXiv:2404.02511) and its baselines.

    from methods.pd_sliding import PDSlidingConfig, DeFWConfig, CGSConfig, DPGConfig          # method configs (plugins)
    from methods.pd_sliding import L1LeastSquares, LibsvmLogistic     # problem configs
    from methods.pd_sliding import make_graph, L1Ball, NuclearBall, cndg
"""
from methods.pd_sliding.cndg import cndg
from methods.pd_sliding.config import CGSConfig, DPGConfig, DeFWConfig, L1LeastSquares, LibsvmLogistic, PDSlidingConfig
from methods.pd_sliding.graphs import Graph, make_graph
from methods.pd_sliding.oracles import L1Ball, NuclearBall, Unconstrained

__all__ = ["PDSlidingConfig", "DeFWConfig", "CGSConfig", "DPGConfig", "L1LeastSquares", "LibsvmLogistic", "Graph", "make_graph", "L1Ball",
           "NuclearBall", "Unconstrained", "cndg"]
