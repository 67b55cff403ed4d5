//go:build amd64 && !purego

package optim

import "golang.org/x/sys/cpu"

// adamAVX512 and adamAVX2 are adamKernelGo in assembly (adam_amd64.s),
// bit for bit: the same float32 operations in the same order.
//
//go:noescape
func adamAVX512(n int, p, grad, m, v *float32, c *adamCoef, useWD, useDecay bool)

//go:noescape
func adamAVX2(n int, p, grad, m, v *float32, c *adamCoef, useWD, useDecay bool)

// adamKernels lists the Adam kernels this CPU runs, fastest first, with
// their names (the tests run every one).
func adamKernels() []namedAdamKernel {
	var ks []namedAdamKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, namedAdamKernel{"avx512", func(p, g, m, v []float32, c *adamCoef) {
			n := len(p)
			if n == 0 {
				return
			}
			g, m, v = g[:n], m[:n], v[:n]
			adamAVX512(n, &p[0], &g[0], &m[0], &v[0], c, c.wd != 0, c.decay != 1)
		}})
	}
	if cpu.X86.HasAVX2 {
		ks = append(ks, namedAdamKernel{"avx2", func(p, g, m, v []float32, c *adamCoef) {
			n := len(p) &^ 7
			if n > 0 {
				g, m, v := g[:n], m[:n], v[:n]
				adamAVX2(n, &p[0], &g[0], &m[0], &v[0], c, c.wd != 0, c.decay != 1)
			}
			adamKernelGo(p[n:], g[n:len(p)], m[n:len(p)], v[n:len(p)], c)
		}})
	}
	return append(ks, namedAdamKernel{"go", adamKernelGo})
}
