// Package closure computes Nix store closures and reads and writes the
// files that describe them: registrations (closureInfo), store-paths lists,
// the nix-store --dump-db format and NAR serialisations.
package closure

// DefaultStoreDir is the store directory Nix uses unless configured otherwise.
const DefaultStoreDir = "/nix/store"

// PathInfo is what the Nix database knows of one valid store path.
type PathInfo struct {
	// Path is the full store path, e.g. /nix/store/<hash>-<name>.
	Path string
	// NarHash is the SHA-256 digest of the path's NAR serialisation.
	NarHash [32]byte
	// NarSize is the length in bytes of the path's NAR serialisation.
	NarSize uint64
	// References are the full store paths this path refers to, sorted,
	// possibly including Path itself.
	References []string
	// Deriver is the store path of the derivation that built Path, or "".
	Deriver string
}

// Closure is a set of store paths closed under references.
type Closure struct {
	// StoreDir is the store directory the paths live in.
	StoreDir string
	// Roots are the store paths the closure was computed from, sorted.
	Roots []string
	// Paths holds one entry per store path, sorted by Path.
	Paths []PathInfo
}
