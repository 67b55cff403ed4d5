package dataset

import (
	"math/bits"
	"math/rand/v2"
)

// The package's randomness is built from two fixed algorithms so that results depend only on
// the seed, not on the Go release: SplitMix64's finaliser to derive independent keys from
// (seed, epoch, example, purpose), and math/rand/v2's PCG (a specified algorithm) with our own
// bounded draws and Fisher-Yates shuffle, rather than the library's helpers, whose algorithms
// are not promised to stay the same.

// Purposes, mixed into keys so that streams for different uses never coincide.
const (
	purposeShuffle uint64 = 0x5348554646 // "SHUFF"
	purposeAugment uint64 = 0x4155474d   // "AUGM"
	purposeSplit   uint64 = 0x53504c4954 // "SPLIT"
	purposeBalance uint64 = 0x42414c     // "BAL"
)

// mix64 is SplitMix64's finaliser: a bijection on uint64 with good avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// deriveKey hashes its parts into one 64-bit key.
func deriveKey(parts ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix64(h ^ mix64(p+0x9e3779b97f4a7c15))
	}
	return h
}

// newPCG returns a PCG stream for a key.
func newPCG(key uint64) *rand.PCG {
	return rand.NewPCG(key, mix64(key^0xda3e39cb94b95bdb))
}

// bounded maps a uniform 64-bit value to [0, n) by Lemire's multiply-shift (bias below n/2^64).
func bounded(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// shuffleInts is a Fisher-Yates shuffle driven by a PCG stream.
func shuffleInts(r *rand.PCG, a []int) {
	for i := len(a) - 1; i > 0; i-- {
		j := bounded(r.Uint64(), i+1)
		a[i], a[j] = a[j], a[i]
	}
}
