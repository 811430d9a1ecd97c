// Package verify checks a store tree (an image reader, a mounted image or a
// store directory, all read through image.FS) against the path infos of a
// closure: every registered path must be present with the registered NAR
// size and SHA-256 NAR hash. It also reports paths present but not
// registered, references leaving the set, and departures from the
// conventions of a store image (as warnings).
//
// Check never panics on a corrupt tree: a path whose bytes cannot be read
// (or whose reader fails in any way) is reported as corrupt and the other
// paths are still checked.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
)

// Status is the outcome for one registered path.
type Status string

// Path outcomes.
const (
	StatusOK       Status = "ok"       // present, NAR size and hash as registered
	StatusMissing  Status = "missing"  // not in the tree
	StatusMismatch Status = "mismatch" // present, NAR size or hash differ
	StatusCorrupt  Status = "corrupt"  // present, but its bytes cannot be read
)

// ExtraPolicy says what paths present but not registered mean.
type ExtraPolicy int

// Extra path policies.
const (
	ExtraFail   ExtraPolicy = iota // extra paths are a failure (images)
	ExtraWarn                      // reported, but not a failure
	ExtraIgnore                    // not even listed (a shared store directory)
)

// Options controls Check. The zero value checks with one job per CPU,
// treats extra paths as failures and checks the store-image conventions.
type Options struct {
	// StoreDir is the logical store directory of the paths, used to name
	// entries in reports; "" means closure.DefaultStoreDir.
	StoreDir string
	// Jobs is the number of paths hashed at once; 0 or less means the
	// number of CPUs.
	Jobs int
	// Extra says how paths present but not registered count.
	Extra ExtraPolicy
	// Ignore lists root entries that are neither store paths nor extra,
	// such as image.RegistrationName, ".links" or "lost+found".
	Ignore []string
	// Against, if not nil, is a reference tree (store paths by base name,
	// e.g. os.DirFS of a store directory) that a mismatched path is compared
	// with file by file to name the first differing file.
	Against fs.FS
	// NoConventions turns the store-image convention warnings off.
	NoConventions bool
	// Mtime, if not nil, is the fixed modification time (seconds since the
	// epoch) every entry should have. If nil the most common one is
	// expected of all.
	Mtime *int64
	// Progress, if not nil, is called with the number of file bytes read
	// as hashing goes. It is called from several goroutines.
	Progress func(n int64)
	// PathDone, if not nil, is called once per registered path checked. It
	// is called from several goroutines.
	PathDone func()
}

// PathResult is the outcome for one registered path.
type PathResult struct {
	Path     string `json:"path"`
	Status   Status `json:"status"`
	WantHash string `json:"wantHash"`
	WantSize uint64 `json:"wantSize"`
	// GotHash and GotSize are the NAR hash and size found (mismatch and ok
	// only; GotHash is empty when hashing stopped early because the files
	// alone are larger than the registered NAR size).
	GotHash string `json:"gotHash,omitempty"`
	GotSize uint64 `json:"gotSize,omitempty"`
	// Detail says what could not be read (corrupt) or, for a mismatch
	// checked against a reference tree, which file differs first.
	Detail string `json:"detail,omitempty"`
}

// Warning is a departure from the store-image conventions found in one
// store path.
type Warning struct {
	// Path is the first entry found with the problem.
	Path string `json:"path"`
	// Kind is one of "owner", "mode", "setuid", "device", "special",
	// "mtime".
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// Count is how many entries of the store path have the problem.
	Count int `json:"count"`
}

// Reference is a reference from a registered path to a path outside the
// registered set.
type Reference struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Report is the result of Check.
type Report struct {
	// Paths holds one result per registered path, sorted by path.
	Paths []PathResult `json:"paths"`
	// Extra lists root entries present but not registered, as full store
	// paths (or bare names for entries that are not store path names),
	// sorted. Empty with ExtraIgnore.
	Extra []string `json:"extra"`
	// ExtraFails records whether Extra entries are failures.
	ExtraFails bool `json:"extraFails"`
	// OutsideRefs lists references to paths outside the registered set.
	OutsideRefs []Reference `json:"outsideRefs"`
	// Warnings lists convention problems, sorted by path and kind.
	Warnings []Warning `json:"warnings"`
	// RootError is set when the tree's root could not be listed, so extra
	// paths could not be looked for.
	RootError string `json:"rootError,omitempty"`
	// Counts by status.
	OK         int `json:"ok"`
	Missing    int `json:"missing"`
	Mismatched int `json:"mismatched"`
	Corrupt    int `json:"corrupt"`
	// NarBytes is the total NAR size hashed.
	NarBytes uint64 `json:"narBytes"`
}

// Failed reports whether r records any failure: a path missing,
// mismatched or corrupt, a reference leaving the set, an extra path (if
// those count) or an unlistable root. Warnings are not failures.
func (r *Report) Failed() bool {
	return r.Missing+r.Mismatched+r.Corrupt+len(r.OutsideRefs) > 0 ||
		(r.ExtraFails && len(r.Extra) > 0) || r.RootError != ""
}

// maxDepth bounds directory nesting, so a directory loop in a corrupt image
// ends with an error instead of exhausting the stack.
const maxDepth = 4096

// errTooLarge stops hashing a path whose files alone exceed its registered
// NAR size: it cannot match, and a corrupt size must not make us read
// petabytes.
var errTooLarge = errors.New("files larger than the registered NAR size")

// Check verifies fsys, which holds store paths by base name at its root,
// against infos. It returns an error only when ctx is cancelled or infos
// are not valid store paths of the store directory; everything found in
// fsys is in the Report.
func Check(ctx context.Context, fsys image.FS, infos []closure.PathInfo, opt Options) (*Report, error) {
	storeDir := opt.StoreDir
	if storeDir == "" {
		storeDir = closure.DefaultStoreDir
	}
	jobs := opt.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	infos = slices.Clone(infos)
	slices.SortFunc(infos, func(a, b closure.PathInfo) int { return strings.Compare(a.Path, b.Path) })
	bases := make(map[string]bool, len(infos))
	set := make(map[string]bool, len(infos))
	for i, p := range infos {
		sp, err := closure.ParseStorePath(storeDir, p.Path)
		if err != nil {
			return nil, err
		}
		if i > 0 && infos[i-1].Path == p.Path {
			return nil, fmt.Errorf("path %s given twice", p.Path)
		}
		bases[sp.Base()] = true
		set[p.Path] = true
	}
	rep := &Report{ExtraFails: opt.Extra == ExtraFail}
	for _, p := range infos {
		for _, r := range p.References {
			if !set[r] {
				rep.OutsideRefs = append(rep.OutsideRefs, Reference{From: p.Path, To: r})
			}
		}
	}

	// Root listing: extra paths.
	if opt.Extra != ExtraIgnore {
		ents, err := safeReadDir(fsys, ".")
		if err != nil {
			rep.RootError = err.Error()
		}
		ignore := make(map[string]bool)
		for _, n := range opt.Ignore {
			ignore[n] = true
		}
		for _, e := range ents {
			n := e.Name()
			if bases[n] || ignore[n] {
				continue
			}
			if _, err := closure.ParseBaseName(n); err == nil {
				n = storeDir + "/" + n
			}
			rep.Extra = append(rep.Extra, n)
		}
		sort.Strings(rep.Extra)
	}

	// Hash the biggest paths first, so the last ones to finish are small.
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return infos[order[a]].NarSize > infos[order[b]].NarSize })

	rep.Paths = make([]PathResult, len(infos))
	states := make([]*pathState, len(infos))
	var next atomic.Int64
	var wg sync.WaitGroup
	if jobs > len(infos) {
		jobs = len(infos)
	}
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := closure.NewNarHasher()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(order) {
					return
				}
				i := order[k]
				st := &pathState{
					ctx: ctx, storeDir: storeDir, limit: infos[i].NarSize,
					progress: opt.Progress, conv: !opt.NoConventions,
				}
				states[i] = st
				rep.Paths[i] = checkPath(h, fsys, &infos[i], st, opt.Against, storeDir)
				if opt.PathDone != nil {
					opt.PathDone()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, r := range rep.Paths {
		switch r.Status {
		case StatusOK:
			rep.OK++
		case StatusMissing:
			rep.Missing++
		case StatusMismatch:
			rep.Mismatched++
		case StatusCorrupt:
			rep.Corrupt++
		}
		rep.NarBytes += r.GotSize
	}
	if !opt.NoConventions {
		rep.Warnings = conventionWarnings(states, opt.Mtime, storeDir)
	}
	return rep, nil
}

// checkPath checks one registered path. It recovers from a panic in the
// reader, reporting the path as corrupt.
func checkPath(h *closure.NarHasher, fsys image.FS, info *closure.PathInfo, st *pathState, against fs.FS, storeDir string) (res PathResult) {
	base := path.Base(info.Path)
	res = PathResult{
		Path:     info.Path,
		WantHash: closure.FormatHash(info.NarHash, closure.HashBase32, true),
		WantSize: info.NarSize,
	}
	defer func() {
		if r := recover(); r != nil {
			res.Status = StatusCorrupt
			res.GotHash, res.GotSize = "", 0
			res.Detail = fmt.Sprintf("reader panic: %v", r)
		}
	}()
	if _, err := fsys.Lstat(base); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			res.Status = StatusMissing
			return res
		}
		res.Status = StatusCorrupt
		res.Detail = err.Error()
		return res
	}
	digest, size, err := h.Hash(&pathFS{fsys: fsys, st: st}, base, nil)
	switch {
	case errors.Is(err, errTooLarge):
		res.Status = StatusMismatch
		res.Detail = fmt.Sprintf("its files alone hold more than the registered NAR size of %d bytes", info.NarSize)
	case err != nil:
		if st.ctx.Err() != nil {
			return res
		}
		res.Status = StatusCorrupt
		res.Detail = err.Error()
		return res
	default:
		res.GotHash = closure.FormatHash(digest, closure.HashBase32, true)
		res.GotSize = size
		if digest == info.NarHash && size == info.NarSize {
			res.Status = StatusOK
			return res
		}
		res.Status = StatusMismatch
	}
	if against != nil {
		if d := FirstDiff(fsys, against, base, storeDir); d != "" {
			res.Detail = d
		} else if res.Detail == "" {
			res.Detail = "no file differs from the reference tree (the registration does not describe it)"
		}
	}
	return res
}

// safeReadDir is fs.ReadDir that turns a reader panic into an error.
func safeReadDir(fsys fs.FS, name string) (ents []fs.DirEntry, err error) {
	defer func() {
		if r := recover(); r != nil {
			ents, err = nil, fmt.Errorf("listing %s: reader panic: %v", name, r)
		}
	}()
	ents, err = fs.ReadDir(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("listing the root: %w", err)
	}
	return ents, nil
}
