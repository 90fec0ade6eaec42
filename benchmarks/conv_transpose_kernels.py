"""The transposed convolutions of DCGAN 64x64 (batch 64): stock kernel against ganforge's GEMM form.

    python benchmarks/conv_transpose_kernels.py

Forward (no grad) and forward+backward milliseconds, best of 5, channels_last.
The GEMM form is timed only where tune_for_cpu uses it (large weight, 4x4 maps).
"""

from __future__ import annotations

import copy
import time

import torch

from ganforge.models.lowering import gemm_pays_off, use_gemm_form

LAYERS = [(1024, 512, 4), (512, 256, 8), (256, 128, 16), (128, 3, 32)]  # C_in, C_out, input side


def best_ms(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    print("| layer | input | GEMM form used | stock fwd ms | GEMM fwd ms | stock fwd+bwd ms | GEMM fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|")
    for c_in, c_out, side in LAYERS:
        stock = torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1).to(memory_format=torch.channels_last)
        gemm = copy.deepcopy(stock)
        use_gemm_form(gemm, torch.channels_last)
        x = torch.randn(64, c_in, side, side).to(memory_format=torch.channels_last).requires_grad_()
        upstream = torch.randn(64, c_out, 2 * side, 2 * side).to(memory_format=torch.channels_last)
        row = []
        for layer in (stock, gemm) if gemm_pays_off(stock) else (stock,):
            def forward(layer=layer) -> None:
                with torch.no_grad():
                    layer(x)
            row.append((best_ms(forward), best_ms(lambda layer=layer: layer(x).backward(upstream))))
        gemm_ms = row[1] if len(row) > 1 else None
        print(f"| ConvTranspose2d({c_in}, {c_out}, 4, 2, 1) | {side}x{side} | {'yes' if gemm_ms else 'no'} "
              f"| {row[0][0]:.0f} | {f'{gemm_ms[0]:.0f}' if gemm_ms else '-'} | {row[0][1]:.0f} "
              f"| {f'{gemm_ms[1]:.0f}' if gemm_ms else '-'} |", flush=True)


if __name__ == "__main__":
    main()
