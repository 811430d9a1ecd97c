package erofs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/integration/fixture"
)

// TestWriteCancel cancels the context in the middle of writing the
// fixture's closure (compressed, microvm.nix's flags, and uncompressed)
// and checks that Write stops with context.Canceled. The time from the
// cancel to Write's return is logged (the writer checks the context
// between pclusters, so it is a few milliseconds).
func TestWriteCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("fixture build skipped in -short mode")
	}
	f := fixture.Get(t)
	tree, err := image.FromStorePaths(f.Paths, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts func(o *Options)
	}{
		{"microvm", func(o *Options) { o.Compressor = "lz4hc"; o.Ztailpacking = true; o.Fragments = true }},
		{"zstd-1m", func(o *Options) { o.Compressor = "zstd"; o.Level = 19; o.PclusterSize = 1 << 20 }},
		{"plain", func(o *Options) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var consumed int64
			var cancelled atomic.Int64 // UnixNano of the cancel
			o := baseOpts()
			tc.opts(&o)
			o.Progress = func(n int64) {
				if consumed += n; consumed >= min(tree.Stats.Bytes/4, 8<<20) && cancelled.Load() == 0 {
					cancelled.Store(time.Now().UnixNano())
					cancel()
				}
			}
			out, err := os.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			err = Write(ctx, out, tree, o)
			end := time.Now()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Write cancelled after %d of %d bytes: %v, want context.Canceled", consumed, tree.Stats.Bytes, err)
			}
			t.Logf("stopped %v after the cancel, %d of %d bytes consumed", end.Sub(time.Unix(0, cancelled.Load())), consumed, tree.Stats.Bytes)
		})
	}
}
