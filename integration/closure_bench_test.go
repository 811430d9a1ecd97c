package integration_test

import (
	"io"
	"path"
	"testing"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/integration/fixture"
)

// The closure benchmarks run on the bench fixture (400+ paths, ~700 MB);
// scripts/bench-closure.sh compares the same work with nix-store and openssl.

// BenchmarkClosureDBRegistration: open the Nix database, resolve the whole
// bench closure and write its registration.
func BenchmarkClosureDBRegistration(b *testing.B) {
	f := fixture.GetSize(b, fixture.SizeBench)
	for b.Loop() {
		db, err := closure.OpenDB(f.DB, f.StoreDir)
		if err != nil {
			b.Fatal(err)
		}
		c, err := db.Resolve([]string{f.Root})
		if err != nil {
			b.Fatal(err)
		}
		if err := closure.WriteRegistration(io.Discard, c); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

// BenchmarkClosureNARHash: read, serialise and hash every path of the bench
// closure, on all cores.
func BenchmarkClosureNARHash(b *testing.B) {
	f := fixture.GetSize(b, fixture.SizeBench)
	names := make([]string, len(f.Paths))
	for i, p := range f.Paths {
		names[i] = path.Base(p)
	}
	fsys := closure.DirFS(f.StoreDir)
	res, err := closure.HashPaths(fsys, names, closure.HashOptions{Jobs: closure.DefaultJobs()})
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, r := range res {
		total += int64(r.Size)
	}
	b.SetBytes(total)
	for b.Loop() {
		if _, err := closure.HashPaths(fsys, names, closure.HashOptions{Jobs: closure.DefaultJobs()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClosureScan: resolve the bench closure without the database,
// scanning every path for references.
func BenchmarkClosureScan(b *testing.B) {
	f := fixture.GetSize(b, fixture.SizeBench)
	s := &closure.Scanner{StoreDir: f.StoreDir, FS: closure.DirFS(f.StoreDir), Options: closure.HashOptions{Jobs: closure.DefaultJobs()}}
	for b.Loop() {
		if _, err := s.Resolve([]string{f.Root}); err != nil {
			b.Fatal(err)
		}
	}
}
