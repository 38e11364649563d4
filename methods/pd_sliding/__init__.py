"""Decentralised primal-dual sliding with CGS inner loop (arXiv:2404.02511) and its baselines.

    from methods.pd_sliding import PDSliding, DeFW, CGS, DPG          # method configs (plugins)
    from methods.pd_sliding import L1LeastSquares, LibsvmLogistic     # problem configs
    from methods.pd_sliding import make_graph, L1Ball, NuclearBall, cndg
"""
from methods.pd_sliding.cndg import cndg
from methods.pd_sliding.config import CGS, DPG, DeFW, L1LeastSquares, LibsvmLogistic, PDSliding
from methods.pd_sliding.graphs import Graph, make_graph
from methods.pd_sliding.oracles import L1Ball, NuclearBall, Unconstrained

__all__ = ["PDSliding", "DeFW", "CGS", "DPG", "L1LeastSquares", "LibsvmLogistic", "Graph", "make_graph", "L1Ball",
           "NuclearBall", "Unconstrained", "cndg"]
