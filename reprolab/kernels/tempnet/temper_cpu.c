/* TempNet's eval-mode logits / tau(logits) on CPU, in place, fp32 (reprolab/kernels/tempnet/temper_cpu.py builds and calls it).
 * It reads the module's parameters as they are at the call (W1, b1, W2, b2, the pooling's log temperature s, the last
 * layer v, c): with x a row of the logits (shift: minus its max), the formula of `TempNet.pooled` in eval mode,
 *
 *     h = sigmoid((x W1^T) / max(|x|, 1e-12) + b1);  a = W2 h + b2;  p = softmax(a / exp(s))
 *     z = sum_i (p_i - 1/M) v_i a_i + c;            tau = lo + span sigmoid(z);  logits /= tau
 *
 * Rows go in blocks of BLOCK_ROWS, each weight row read once per block (the weights, not the rows, are what a decode
 * step streams). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define BLOCK_ROWS 8

static float dot(const float *a, const float *b, int64_t n) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static float dot_shifted(const float *w, const float *x, float m, int64_t n) { /* w . (x - m) */
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) s += w[k] * (x[k] - m);
    return s;
}

static void temper_block(float *x, int64_t rows, int64_t V, int64_t M, const float *w1, const float *b1,
                         const float *w2, const float *b2, float inv_t, const float *v, float c, float lo, float span,
                         int shift, float *h, float *a) {
    float inv_norm[BLOCK_ROWS], top[BLOCK_ROWS];
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * V;
        float m = 0.f, sq = 0.f;
        if (shift) {
            m = xr[0];
            for (int64_t k = 1; k < V; k++) m = xr[k] > m ? xr[k] : m;
        }
#pragma omp simd reduction(+ : sq)
        for (int64_t k = 0; k < V; k++) sq += (xr[k] - m) * (xr[k] - m);
        float norm = sqrtf(sq);
        inv_norm[r] = 1.f / (norm > 1e-12f ? norm : 1e-12f);
        top[r] = m;
    }
    for (int64_t j = 0; j < M; j++) /* first layer */
        for (int64_t r = 0; r < rows; r++) {
            const float *wj = w1 + j * V, *xr = x + r * V;
            float pre = (shift ? dot_shifted(wj, xr, top[r], V) : dot(wj, xr, V)) * inv_norm[r] + b1[j];
            h[r * M + j] = 1.f / (1.f + expf(-pre));
        }
    for (int64_t i = 0; i < M; i++) /* second layer */
        for (int64_t r = 0; r < rows; r++) a[r * M + i] = dot(w2 + i * M, h + r * M, M) + b2[i];
    for (int64_t r = 0; r < rows; r++) { /* pooling, last layer, division */
        const float *ar = a + r * M;
        float amax = -INFINITY, den = 0.f, num = 0.f, mean = 0.f;
        for (int64_t i = 0; i < M; i++) amax = ar[i] > amax ? ar[i] : amax;
        for (int64_t i = 0; i < M; i++) {
            float e = expf((ar[i] - amax) * inv_t);
            den += e;
            num += e * v[i] * ar[i];
            mean += v[i] * ar[i];
        }
        float z = num / den - mean / (float)M + c;
        float tau = lo + span / (1.f + expf(-z));
        float *xr = x + r * V;
#pragma omp simd
        for (int64_t k = 0; k < V; k++) xr[k] /= tau;
    }
}

/* x (rows, V) contiguous, divided in place; w1 (M, V), b1 (M), w2 (M, M), b2 (M), s (1), v (M), c (1), contiguous.
 * Returns 0, or -1 where the work space (2 BLOCK_ROWS M floats) cannot be allocated (x untouched). */
int temper_rows(float *x, int64_t rows, int64_t V, int64_t M, const float *w1, const float *b1, const float *w2,
                const float *b2, const float *s, const float *v, const float *c, float lo, float span, int shift) {
    float *work = malloc(sizeof(float) * 2 * BLOCK_ROWS * M);
    if (work == NULL) return -1;
    float inv_t = expf(-*s);
    for (int64_t r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
        int64_t n = rows - r0 < BLOCK_ROWS ? rows - r0 : BLOCK_ROWS;
        temper_block(x + r0 * V, n, V, M, w1, b1, w2, b2, inv_t, v, *c, lo, span, shift, work, work + BLOCK_ROWS * M);
    }
    free(work);
    return 0;
}
