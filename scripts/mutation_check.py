"""Mutation check of the core: every backward rule, perturbed, must make the tests fail.

Each mutant is one source edit of ``src/matbackprop`` -- the divided differences scaled by
``1 + δ``, a term dropped, a sign flipped, a tie rule replaced by a worse one, a convention at
zero changed -- applied to a copy of the repository; the tests that cover that file are run on
the copy, stopping at the first failure. A mutant is *killed* when they fail, *survives* when
they pass (the suite could not see that defect), and is an *error* when its edit no longer
matches the source (the list must follow the code).

Usage::

    python scripts/mutation_check.py                 # all mutants, 2 test workers
    python scripts/mutation_check.py --list          # the mutants, without running
    python scripts/mutation_check.py --only log_dd   # those whose name contains "log_dd"

First runs the unmutated copy (it must pass, else nothing is measured); then prints one line per
mutant and the count ``killed/total``; exits 1 if any survived.
Runs each mutant's tests with one BLAS thread per worker (as ``make test``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINALG_TESTS = ("tests/linalg",)
NN_TESTS = ("tests/nn",)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to src/matbackprop
    old: str
    new: str
    tests: tuple[str, ...] = LINALG_TESTS
    why: str = ""


DD = "linalg/_divided_differences.py"
SPECTRAL = "linalg/_spectral.py"
MF = "linalg/_matrix_functions.py"

MUTANTS = [
    # ---- Daleckii–Krein P (first divided differences) and its use
    Mutant(
        "P_offdiag_x1.01",
        DD,
        "return torch.where(ties, df.unsqueeze(-1), quotient), ties",
        "return torch.where(ties, df.unsqueeze(-1), 1.01 * quotient), ties",
        why="P×(1+δ)",
    ),
    Mutant(
        "P_ties_x1.01",
        DD,
        "return torch.where(ties, df.unsqueeze(-1), quotient), ties",
        "return torch.where(ties, 1.01 * df.unsqueeze(-1), quotient), ties",
        why="f′ on ties ×(1+δ)",
    ),
    Mutant(
        "P_generic_tie_first_order",
        DD,
        "on_ties = 0.5 * (df.unsqueeze(-1) + df.unsqueeze(-2))  # (..., n, n)",
        "on_ties = torch.maximum(df.unsqueeze(-1), df.unsqueeze(-2))  # (..., n, n)",
        why="generic tie rule O(gap) (max of the derivatives)",
    ),
    Mutant(
        "P_generic_no_tie_band",
        DD,
        "    ties = tie_mask(lam, rtol)\n    on_ties",
        "    ties = tie_mask(lam, 0.0)\n    on_ties",
        why="no tie band for user functions (cancelling quotient)",
    ),
    Mutant(
        "Q_ties_first_order",
        DD,
        "on_ties = 0.5 * fn.d2f((2 * a + c) / 3)  # (..., n, n)",
        "on_ties = 0.25 * (fn.d2f(a) + fn.d2f(c))  # (..., n, n)",
        why="second differences on ties only O(gap) (issue 8 §2.4)",
    ),
    Mutant(
        "Q_quotient_sign",
        DD,
        "quotient = (fn.df(lam).unsqueeze(-1) - P) / gap",
        "quotient = (P - fn.df(lam).unsqueeze(-1)) / gap",
        why="wrong sign",
    ),
    Mutant(
        "DK_no_symmetrization",
        SPECTRAL,
        "S = G + G.mT  # 2 G_sym",
        "S = 2 * G  # 2 G_sym",
        why="gradient not in Sym(n)",
    ),
    Mutant(
        "DK_scale_buffered",
        SPECTRAL,
        "return torch.matmul(W, U.mT, out=S).mul_(0.5)",
        "return torch.matmul(W, U.mT, out=S).mul_(0.55)",
        why="P×1.1 in the adjoint (the buffered eager path)",
    ),
    Mutant(
        "DK_scale",
        SPECTRAL,
        "return (U @ G_tilde @ U.mT).mul_(0.5)",
        "return (U @ G_tilde @ U.mT).mul_(0.55)",
        why="P×1.1 in the adjoint (the torch.func / compile path)",
    ),
    Mutant(
        "DK_jvp_scale",
        SPECTRAL,
        "return daleckii_krein(U, P, dA), torch.zeros_like(mu)",
        "return daleckii_krein(U, 1.01 * P, dA), torch.zeros_like(mu)",
        why="forward mode P×(1+δ)",
    ),
    Mutant(
        "second_order_drop_transpose",
        SPECTRAL,
        "return U @ (X1 + X1.mT) @ U.mT",
        "return U @ (2 * X1) @ U.mT",
        why="dropped term (X̃₁ᵀ)",
    ),
    Mutant(
        "second_order_apart_sign",
        SPECTRAL,
        "apart = ((P * H_t) @ G_t - H_t @ (P * G_t)) / safe",
        "apart = ((P * H_t) @ G_t + H_t @ (P * G_t)) / safe",
        why="wrong sign",
    ),
    Mutant(
        "second_order_tied_half",
        SPECTRAL,
        "tied = 0.5 * ((Q * H_t) @ G_t + H_t @ (Q * G_t).mT)",
        "tied = 0.5 * ((Q * H_t) @ G_t + H_t @ (Q * G_t))",
        why="transpose dropped on ties",
    ),
    Mutant(
        "double_backward_grad_G",
        SPECTRAL,
        "grad_G = daleckii_krein(U, P, H)  # self-adjoint",
        "grad_G = daleckii_krein(U, 1.01 * P, H)  # self-adjoint",
        why="∂/∂G of the adjoint ×(1+δ)",
    ),
    Mutant(
        "psd_no_zero_snapping",
        SPECTRAL,
        "zero = mu.abs() <= definiteness_tolerance(mu)",
        "zero = mu.abs() < 0 * definiteness_tolerance(mu)",
        why="rounding zeros not evaluated as 0 (issue 8 §2.2)",
    ),
    Mutant(
        "clamp_factor",
        SPECTRAL,
        "factor = (ma - mb) / (a - b)",
        "factor = 1.0 + 0 * a",
        why="clamped divided difference ignores the clamp",
    ),
    Mutant(
        "clamp_user_fn_plain_quotient",
        SPECTRAL,
        "    dd = None\n    if fn.divided_difference",
        "    dd = lambda a, b: (g(a) - g(b)) / (a - b)\n    if fn.divided_difference",
        why="clamp switches off tie protection (issue 8 §2.3)",
    ),
    # ---- closed-form divided differences of the built-ins
    Mutant(
        "log_dd_unordered",
        MF,
        "scale = torch.maximum(a.reciprocal(), b.reciprocal())  # s/lo",
        "scale = b.reciprocal().expand(a.shape[:-1] + b.shape[-1:]).clone()",
        why="the pair not ordered (t = |a − b|/b: the log1p argument of the old form)",
    ),
    Mutant(
        "log_dd_direct_quotient",
        MF,
        "return t.log1p_().mul_(scale).mul_(inv_s)",
        "return (torch.log(torch.maximum(a, b)) - torch.log(torch.minimum(a, b))).div_("
        "(a - b).abs_()).mul_(inv_s)",
        why="the cancelling quotient (log hi − log lo)/(hi − lo) for every pair",
    ),
    Mutant(
        "log_dd_no_tie_floor",
        MF,
        ".mul_(scale).clamp_min_(finfo.eps)",
        ".mul_(scale).clamp_min_(0.0)",
        why="exact ties 0/0 (the tie mask is gone: the floor makes them f′)",
    ),
    Mutant(
        "sqrt_dd_scale",
        MF,
        "return (_sqrt(a) + _sqrt(b)).reciprocal_().nan_to_num_(posinf=0.0)",
        "return (_sqrt(a) + _sqrt(b)).reciprocal_().mul_(1.001).nan_to_num_(posinf=0.0)",
        why="P×(1+δ) for sqrt",
    ),
    Mutant(
        "sqrt_dd_at_zero",
        MF,
        "return (_sqrt(a) + _sqrt(b)).reciprocal_().nan_to_num_(posinf=0.0)",
        "return (_sqrt(a) + _sqrt(b)).reciprocal_().nan_to_num_(posinf=1e6)",
        why="convention at zero (null-null block of P)",
    ),
    Mutant(
        "sqrt_df_at_zero",
        MF,
        "df=lambda x: _positive_part(x, 0.5 * torch.rsqrt(x), 0.0)",
        "df=lambda x: _positive_part(x, 0.5 * torch.rsqrt(x), 1e6)",
        why="convention at zero (f′, used by forward mode and second differences)",
    ),
    Mutant(
        "invsqrt_dd_sign",
        MF,
        "return (ra + rb).mul_(ra * rb).reciprocal_().neg_()",
        "return (ra + rb).mul_(ra * rb).reciprocal_()",
        why="wrong sign",
    ),
    Mutant(
        "pow_dd_near_base",
        MF,
        "near = lo.pow(p - 1) * torch.expm1(p * torch.log1p(t)) / t",
        "near = hi.pow(p - 1) * torch.expm1(p * torch.log1p(t)) / t",
        why="wrong base",
    ),
    Mutant(
        "pow_df_at_zero",
        MF,
        "p * floor(x).pow(p - 1), 1.0 if p == 1 else 0.0)",
        "p * floor(x).pow(p - 1), 1.0)",
        why="f′(0) for p > 1",
    ),
    Mutant(
        "exp_dd_min",
        MF,
        "mul_(torch.exp(torch.maximum(a, b)))",
        "mul_(torch.exp(torch.minimum(a, b)))",
        why="wrong exponent",
    ),
    Mutant(
        "exp_dd_overflowing_form",
        MF,
        "return torch.expm1(d.neg()).neg_().div_(d).mul_(torch.exp(torch.maximum(a, b)))",
        "return torch.expm1(d).div_(d).mul_(torch.exp(torch.minimum(a, b)))",
        why="the old exp(min)·expm1(d) form (issue 8 §2.5)",
    ),
    # ---- eigh (Prop. 2)
    Mutant(
        "eigh_coupling_sign",
        "linalg/_eigh.py",
        "gaps = lam.unsqueeze(-2) - lam.unsqueeze(-1)  # (..., n, n): σⱼ − σᵢ",
        "gaps = lam.unsqueeze(-1) - lam.unsqueeze(-2)  # (..., n, n): σⱼ − σᵢ",
        why="K̃ instead of K̃ᵀ",
    ),
    Mutant(
        "eigh_no_sym",
        "linalg/_eigh.py",
        "inner = sym(K_tilde_T * (U.mT @ grad_U))",
        "inner = K_tilde_T * (U.mT @ grad_U)",
        why="dropped (·)_sym",
    ),
    Mutant(
        "eigh_drop_diag",
        "linalg/_eigh.py",
        "inner = inner + torch.diag_embed(grad_lam)",
        "inner = inner + 0 * torch.diag_embed(grad_lam)",
        why="dropped (∂ℓ/∂Σ)_diag",
    ),
    Mutant(
        "eigh_jvp_scale",
        "linalg/_eigh.py",
        "d_U = U @ (eigh_coupling(lam, ctx.policy) * dA_tilde)",
        "d_U = U @ (1.01 * eigh_coupling(lam, ctx.policy) * dA_tilde)",
        why="forward mode ×(1+δ)",
    ),
    Mutant(
        "policy_no_zeroing",
        "linalg/_policy.py",
        "return torch.where(degenerate, torch.zeros_like(gaps), 1.0 / safe)",
        "return torch.where(degenerate, torch.ones_like(gaps), 1.0 / safe)",
        why="ties coupled (zero policy not applied)",
    ),
    # ---- SVD (Prop. 2)
    Mutant(
        "svd_coupling_sign",
        "linalg/_svd.py",
        "return 0.5 * (A_skew + B_skew) * diff_inv + 0.5 * (A_skew - B_skew) * sum_inv",
        "return 0.5 * (A_skew + B_skew) * diff_inv + 0.5 * (A_skew + B_skew) * sum_inv",
        why="wrong sign in Kᵀ∘(JΣ + ΣL)",
    ),
    Mutant(
        "svd_drop_D_term",
        "linalg/_svd.py",
        "grad_A = D @ V1.mT",
        "grad_A = 0 * (D @ V1.mT)",
        why="dropped D-term",
    ),
    Mutant(
        "svd_S_inv_scale",
        "linalg/_svd.py",
        "S_inv = policy.inverse_values(S.unsqueeze(-1), smax).squeeze(-1)  # (..., k)",
        "S_inv = 1.01 * policy.inverse_values(S.unsqueeze(-1), smax).squeeze(-1)  # (..., k)",
        why="Σ⁻¹×(1+δ)",
    ),
    Mutant(
        "svd_full_matrices_fold_sign",
        "linalg/_svd.py",
        "gU1 = gU1 - U2 @ (gU2.mT @ U1)",
        "gU1 = gU1 + U2 @ (gU2.mT @ U1)",
        why="wrong sign of the complement fold",
    ),
    # ---- projector, Newton–Schulz
    Mutant(
        "projector_factor",
        "linalg/_projector.py",
        "return 2.0 * (X - Q @ (Q.mT @ X))",
        "return 1.9 * (X - Q @ (Q.mT @ X))",
        why="factor 2 of dΠ",
    ),
    Mutant(
        "projector_drop_complement",
        "linalg/_projector.py",
        "return 2.0 * (X - Q @ (Q.mT @ X))",
        "return 2.0 * X",
        why="dropped (I − Π)",
    ),
    Mutant(
        "newton_schulz_T_bar",
        "linalg/_newton_schulz.py",
        "T_bar = Y.mT @ Y_bar + Z_bar @ Z.mT",
        "T_bar = Y.mT @ Y_bar",
        why="dropped term",
    ),
    Mutant(
        "newton_schulz_trace_sign",
        "linalg/_newton_schulz.py",
        "t_bar = t_bar - (Y_bar * A).sum((-2, -1), keepdim=True) / (t * t)",
        "t_bar = t_bar + (Y_bar * A).sum((-2, -1), keepdim=True) / (t * t)",
        why="wrong sign of the trace adjoint",
    ),
    # ---- nn: the Gram route's divided differences, signed power, vectorization
    Mutant(
        "gram_dd_scale",
        "nn/_pooling/_gram.py",
        "return s1 * h.dd(u_of(a), u_of(b))",
        "return 1.01 * s1 * h.dd(u_of(a), u_of(b))",
        tests=NN_TESTS,
        why="g[a, b]×(1+δ)",
    ),
    Mutant(
        "gram_series_term",
        "nn/_pooling/_gram.py",
        "acc = acc + a * e",
        "acc = acc + 1.001 * a * e",
        tests=NN_TESTS,
        why="series of h[x, y] ×(1+δ)",
    ),
    Mutant(
        "signed_power_slope",
        "nn/_signed_power.py",
        "slope = ctx.alpha * (x.abs() + ctx.delta).pow(ctx.alpha - 1)",
        "slope = ctx.alpha * (x.abs() + ctx.delta).pow(ctx.alpha - 0.9)",
        tests=NN_TESTS,
        why="wrong exponent in s′",
    ),
    Mutant(
        "vectorize_scale",
        "nn/_vectorize.py",
        "one, one * _SQRT2)",
        "one, one * 1.41)",
        tests=NN_TESTS,
        why="√2 isometry broken",
    ),
]


def _copy_repository(target: Path) -> None:
    for name in ("src", "tests", "benchmarks"):  # benchmarks: their smoke tests load them
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", target / "pyproject.toml")


def _apply(root: Path, mutant: Mutant) -> bool:
    if not mutant.old:  # the baseline: no edit
        return True
    path = root / "src" / "matbackprop" / mutant.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        return False
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return True


def run(mutant: Mutant, workers: int, timeout: int) -> tuple[str, float]:
    """``("killed" | "survived" | "error: ...", seconds)``."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = Path(tmp)
        _copy_repository(root)
        if not _apply(root, mutant):
            return "error: edit does not match the source exactly once", 0.0
        env = dict(
            os.environ,
            PYTHONPATH=str(root / "src"),
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                   "-n", str(workers), *mutant.tests]  # fmt: skip
        try:
            result = subprocess.run(command, cwd=root, env=env, capture_output=True,
                                    text=True, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return "error: timeout", time.perf_counter() - start
    seconds = time.perf_counter() - start
    summary = (result.stdout + result.stderr).strip().splitlines()[-1:]
    if result.returncode == 0:
        return "survived", seconds
    # -x stops at the first failure (exit 1, or 2 "interrupted" under xdist)
    if result.returncode in (1, 2) and summary and " failed" in summary[0]:
        failed = [
            line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED")
        ]
        return f"killed by {failed[0] if failed else '?'}", seconds
    return f"error: pytest exit {result.returncode} {summary}", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", default="", help="run the mutants whose name contains this")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (2)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutant (900)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if args.only in m.name]
    if not args.list and not args.no_baseline:
        # the unmutated copy must pass the same tests, else every "kill" would mean nothing
        suites = tuple(sorted({path for m in mutants for path in m.tests}))
        outcome, seconds = run(Mutant("baseline", "", "", "", tests=suites), args.workers,
                               args.timeout)  # fmt: skip
        print(f"{'passed' if outcome == 'survived' else 'FAILED':10s} {seconds:6.1f}s  "
              f"baseline (no edit) on {', '.join(suites)}", flush=True)  # fmt: skip
        if outcome != "survived":
            print(outcome)
            print("the unmutated tests fail: fix them before reading any mutant")
            return 2
    if args.list:
        for m in mutants:
            print(f"{m.name:32s} {m.path:32s} {m.why}")
        return 0
    counts = {"killed": 0, "survived": 0, "error": 0}
    for m in mutants:
        outcome, seconds = run(m, args.workers, args.timeout)
        counts[outcome.split(":")[0].split()[0]] += 1
        status, _, detail = outcome.partition(" by ")
        print(f"{status:10s} {seconds:6.1f}s  {m.name:32s} {m.why}", flush=True)
        if detail:
            print(f"{'':19s}first failure: {detail}", flush=True)
    total = len(mutants)
    print(f"\nkilled {counts['killed']}/{total} (survived {counts['survived']}, "
          f"errors {counts['error']})")  # fmt: skip
    return 0 if counts["killed"] == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
