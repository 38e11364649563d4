"""NAG vs GD for rectangular matrix factorisation and linear networks (arXiv:2410.09640).

    from methods.nag_mf import NagMFConfig, MatrixFactorization, LinearNet, FactorizationSolver
"""
from methods.nag_mf.config import LinearNet, MatrixFactorization, NagMFConfig
from methods.nag_mf.problems import FactorizationProblem, linear_net, matrix_factorization
from methods.nag_mf.solver import FactorizationSolver

__all__ = ["NagMFConfig", "MatrixFactorization", "LinearNet", "FactorizationProblem", "FactorizationSolver",
           "matrix_factorization", "linear_net"]
