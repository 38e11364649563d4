"""NAG vs GD for rectangular matrix factorisation and linear networks (arXiv:2410.09640).

    from methods.nag_mf import NagMF, MatrixFactorization, LinearNet, FactorizationSolver
"""
from methods.nag_mf.config import LinearNet, MatrixFactorization, NagMF
from methods.nag_mf.problems import FactorizationProblem, linear_net, matrix_factorization
from methods.nag_mf.solver import FactorizationSolver

__all__ = ["NagMF", "MatrixFactorization", "LinearNet", "FactorizationProblem", "FactorizationSolver",
           "matrix_factorization", "linear_net"]
