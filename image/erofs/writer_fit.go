package erofs

import "context"

// Fixed-output compression for encoders without a destination-size mode
// (zstd, deflate): the longest prefix of the input whose compressed form
// fits a pcluster is found by compressing trial prefixes.

const (
	// fitMaxTrials bounds the compressions spent on one pcluster.
	fitMaxTrials = 8
	// fitSlack: a compressed size within capBytes/fitSlack of the
	// pcluster size is close enough (the rest is zero padding).
	fitSlack = 32
)

// trialCompress compresses src whole into dst[:0].
func (c *compressor) trialCompress(dst, src []byte) ([]byte, error) {
	if c.zenc != nil {
		return c.zenc.EncodeAll(src, dst[:0]), nil
	}
	return c.codec.Compress(dst[:0], src)
}

// fitTrials returns the compressed form of the longest prefix of src
// (found to within fitSlack) that fits in capBytes, its length and the
// updated ratio estimate (input bytes per output byte). ratio, the estimate
// from the previous pcluster, sizes the first trial; later trials
// interpolate between the longest prefix that fits and the shortest that
// does not, assuming the compressed size grows linearly with the input.
// It stops with ctx's error between trials once ctx is done.
func (c *compressor) fitTrials(ctx context.Context, dst, src []byte, capBytes int, ratio float64) ([]byte, int, float64, error) {
	target := float64(capBytes - capBytes/fitSlack/2)
	l := min(len(src), int(target*ratio)+1)
	lo, hi := 0, len(src)+1 // longest fitting prefix, shortest not fitting
	var best []byte         // compressed src[:lo]
	spare := dst[:0]
	for try := 0; try < fitMaxTrials; try++ {
		if err := ctx.Err(); err != nil {
			return nil, 0, ratio, err
		}
		out, err := c.trialCompress(spare, src[:l])
		if err != nil {
			return nil, 0, ratio, err
		}
		if len(out) <= capBytes {
			lo, best, spare = l, out, best
			if l == len(src) || len(out) >= capBytes-capBytes/fitSlack {
				break
			}
		} else {
			hi, spare = l, out
		}
		if hi-lo <= max(16, lo/512) {
			break
		}
		next := int(float64(l) * target / float64(max(len(out), 1)))
		if next <= lo || next >= hi {
			next = lo + (hi-lo)/2
		}
		l = next
	}
	if lo == 0 {
		return nil, 0, ratio, nil
	}
	return best, lo, float64(lo) / float64(capBytes), nil
}
