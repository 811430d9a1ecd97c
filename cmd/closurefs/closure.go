package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/internal/progress"
	"github.com/spf13/pflag"
)

// closureCommands returns the commands of the closure package: closure,
// why and nar-hash.
func closureCommands() []*command {
	return []*command{closureCommand(), whyCommand(), narHashCommand()}
}

// sourceFlags are the flags that choose where a closure comes from.
type sourceFlags struct {
	db, registration, storePaths, attrs string
	scan                                bool
	storeDir, readDir                   string
	jobs                                int
	quiet                               bool
	stderr                              io.Writer // where progress is drawn
}

func (sf *sourceFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&sf.db, "db", closure.DefaultDBPath, "read the Nix `database` (read-only; the default source)")
	fs.StringVar(&sf.registration, "registration", "", "read a registration `file` or closureInfo directory")
	fs.StringVar(&sf.storePaths, "store-paths", "", "read a store-paths `file` (writeClosure); references and hashes are computed by scanning if needed")
	fs.StringVar(&sf.attrs, "attrs", "", "read exportReferencesGraph output: structured-attrs JSON or the legacy text `file`")
	fs.BoolVar(&sf.scan, "scan", false, "no database: scan the store for references and hash every path")
	fs.StringVar(&sf.storeDir, "store-dir", closure.DefaultStoreDir, "the store `directory` paths are named in")
	fs.StringVar(&sf.readDir, "read-dir", "", "read store paths from this `directory` when hashing or scanning (default: --store-dir)")
	fs.IntVarP(&sf.jobs, "jobs", "j", closure.DefaultJobs(), "paths hashed in parallel")
	fs.BoolVarP(&sf.quiet, "quiet", "q", false, "no progress output")
}

// storeFS returns the file system the store paths are read from.
func (sf *sourceFlags) storeFS() fs.FS {
	dir := sf.readDir
	if dir == "" {
		dir = sf.storeDir
	}
	return closure.DirFS(dir)
}

// fileSource reports whether the closure comes from a file (which then
// needs no ROOT: its whole closure is meant).
func (sf *sourceFlags) fileSource() bool {
	return sf.registration != "" || sf.attrs != "" || sf.storePaths != ""
}

// source returns the chosen Source and a function to release it.
// needInfo is false when only the store paths of the whole closure a file
// describes are wanted (no ROOTs, no NAR hashes), which spares a
// store-paths file the scan: its paths can only be told apart by
// references found by scanning.
func (sf *sourceFlags) source(fs *pflag.FlagSet, needInfo bool) (closure.Source, func(), error) {
	n := 0
	for _, f := range []string{"db", "registration", "store-paths", "attrs", "scan"} {
		if fs.Changed(f) {
			n++
		}
	}
	if n > 1 {
		return nil, nil, usagef("--db, --registration, --store-paths, --attrs and --scan are exclusive")
	}
	if !strings.HasPrefix(sf.storeDir, "/") || filepath.Clean(sf.storeDir) != sf.storeDir || sf.storeDir == "/" {
		return nil, nil, usagef("--store-dir %q must be a clean absolute path", sf.storeDir)
	}
	// The progress bar is drawn only by the sources that hash the store.
	var bar *progress.Bar
	hashing := func() closure.HashOptions {
		bar = progress.New(sf.stderr, "hashing", -1, 0, sf.quiet)
		return closure.HashOptions{Jobs: sf.jobs, Progress: func(_ int, n uint64) {
			bar.Add(int64(n))
			bar.Item()
		}}
	}
	nop := func() { bar.Finish() }
	switch {
	case sf.registration != "":
		p := registrationFile(sf.registration)
		infos, err := readRegistration(p, sf.storeDir, false)
		if err != nil {
			return nil, nil, err
		}
		g, err := closure.NewGraph(sf.storeDir, p, infos)
		return g, nop, err
	case sf.attrs != "":
		infos, missing, err := closure.ReadAttrsFile(sf.attrs, sf.storeDir)
		if err != nil {
			return nil, nil, err
		}
		g, err := closure.NewGraph(sf.storeDir, sf.attrs, infos)
		if err != nil {
			return nil, nil, err
		}
		if missing && needInfo {
			g.Hasher = &closure.Hasher{FS: sf.storeFS(), Options: hashing()}
		}
		return g, nop, nil
	case sf.storePaths != "":
		f, err := os.Open(sf.storePaths)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		paths, err := closure.ReadStorePaths(f, sf.storePaths, sf.storeDir)
		if err != nil {
			return nil, nil, err
		}
		if len(paths) == 0 {
			return nil, nil, fmt.Errorf("%s: no store paths in it", sf.storePaths)
		}
		if !needInfo {
			infos := make([]closure.PathInfo, len(paths))
			for i, p := range paths {
				infos[i].Path = p
			}
			g, err := closure.NewGraph(sf.storeDir, sf.storePaths, infos)
			return g, nop, err
		}
		warn := func(format string, args ...any) {
			fmt.Fprintf(sf.stderr, "closurefs: warning: "+format+"\n", args...)
		}
		return &closure.Scanner{StoreDir: sf.storeDir, FS: sf.storeFS(), Candidates: paths, List: sf.storePaths, Warn: warn, Options: hashing()}, nop, nil
	case sf.scan:
		return &closure.Scanner{StoreDir: sf.storeDir, FS: sf.storeFS(), Options: hashing()}, nop, nil
	default:
		db, err := closure.OpenDB(sf.db, sf.storeDir)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { db.Close() }, nil
	}
}

// rootPath maps a command-line argument to a store path: lexically if it
// names something inside the store directory (so a store path that is a
// symlink is not followed and need not exist), else by following symlinks
// (result links, profiles, /run/current-system).
func rootPath(storeDir, arg string) (string, error) {
	if abs, err := filepath.Abs(arg); err == nil && strings.HasPrefix(abs, storeDir+"/") {
		return closure.ToStorePath(storeDir, abs)
	}
	return closure.FollowLinksToStorePath(storeDir, arg)
}

func rootPaths(storeDir string, args []string) ([]string, error) {
	var roots []string
	for _, a := range args {
		p, err := rootPath(storeDir, a)
		if err != nil {
			return nil, err
		}
		roots = append(roots, p)
	}
	return roots, nil
}

func closureCommand() *command {
	return &command{
		name:    "closure",
		summary: "compute a closure and print or write its closureInfo files",
		usage:   "[flags] ROOT...",
		help: `Computes the closure of the ROOTs (store paths, paths inside them, or symlinks
leading there such as result links and profiles) and prints it:
  store-paths   one path per line (closureInfo's store-paths)
  registration  closureInfo's registration, for nix-store --load-db
  dump-db       the form nix-store --dump-db prints (base16 hashes, derivers)
  json          storeDir, roots and closure (exportReferencesGraph's fields)
With -o DIR the three closureInfo files (registration, store-paths,
total-nar-size) are written into DIR instead, byte-identical to nixpkgs'
closureInfo. With --registration, --attrs or --store-paths and no ROOT, the
whole closure the file describes is used.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			sf := sourceFlags{stderr: e.stderr}
			format := fs.String("format", "store-paths", "output `format`: store-paths, registration, dump-db or json")
			out := fs.StringP("output", "o", "", "write registration, store-paths and total-nar-size into `DIR`")
			sf.add(fs)
			return func(args []string) error {
				switch *format {
				case "store-paths", "registration", "dump-db", "json":
				default:
					return usagef("unknown --format %q (want store-paths, registration, dump-db or json)", *format)
				}
				if *out != "" && fs.Changed("format") {
					return usagef("-o writes the closureInfo files; --format is for printing")
				}
				if len(args) == 0 && !sf.fileSource() {
					return usagef("no ROOT given")
				}
				if sf.jobs < 1 {
					return usagef("--jobs must be at least 1")
				}
				needInfo := *out != "" || *format != "store-paths" || len(args) > 0
				src, done, err := sf.source(fs, needInfo)
				if err != nil {
					return err
				}
				defer done()
				roots, err := rootPaths(sf.storeDir, args)
				if err != nil {
					return err
				}
				c, err := src.Resolve(roots)
				if err != nil {
					return err
				}
				if *out != "" {
					return closure.WriteClosureInfo(*out, c)
				}
				w := bufio.NewWriterSize(e.stdout, 1<<16)
				switch *format {
				case "store-paths":
					err = closure.WriteStorePaths(w, c)
				case "registration":
					err = closure.WriteRegistration(w, c)
				case "dump-db":
					err = closure.WriteDumpDB(w, c)
				case "json":
					err = closure.WriteJSON(w, c)
				}
				if err != nil {
					return err
				}
				return w.Flush()
			}
		},
	}
}

func whyCommand() *command {
	return &command{
		name:    "why",
		summary: "print one reference chain from ROOT to PATH",
		usage:   "[flags] ROOT PATH",
		help: `Prints a shortest chain of references from ROOT to PATH, one store path per
line starting with ROOT. Exits 1 if ROOT does not depend on PATH.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			sf := sourceFlags{stderr: e.stderr}
			sf.add(fs)
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("want ROOT and PATH, got %d arguments", len(args))
				}
				roots, err := rootPaths(sf.storeDir, args)
				if err != nil {
					return err
				}
				src, done, err := sf.source(fs, true)
				if err != nil {
					return err
				}
				defer done()
				c, err := src.Resolve(roots[:1])
				if err != nil {
					return err
				}
				chain, err := closure.Why(c, roots[0], roots[1])
				if err != nil {
					return err
				}
				for _, p := range chain {
					fmt.Fprintln(e.stdout, p)
				}
				return nil
			}
		},
	}
}

// hashTarget returns the absolute path nar-hash serialises for the
// argument a. A path ending in "/", "/." or "/.." names the directory a
// symlink there leads to, as in the kernel (and nix-hash): result/ is the
// output, not the link.
func hashTarget(a string) (string, error) {
	last := a[strings.LastIndexByte(a, '/')+1:]
	if strings.HasSuffix(a, "/") || last == "." || last == ".." {
		if _, err := os.Stat(a); err != nil {
			return "", err
		}
		r, err := filepath.EvalSymlinks(a)
		if err != nil {
			return "", err
		}
		a = r
	}
	return filepath.Abs(a)
}

func narHashCommand() *command {
	return &command{
		name:    "nar-hash",
		summary: "print the SHA-256 NAR hash of each PATH",
		usage:   "[flags] PATH...",
		help: `Serialises each PATH (any file, directory or symlink; not only store paths)
as a NAR and prints its SHA-256 hash, one per line in the order given, like
nix-hash --type sha256. PATHs are hashed in parallel.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			base32 := fs.Bool("base32", false, "print nix-base32 (the default)")
			base16 := fs.Bool("base16", false, "print base16 (hex)")
			sri := fs.Bool("sri", false, "print an SRI hash, sha256-<base64>")
			asJSON := fs.Bool("json", false, "print a JSON array of {path, narHash, narSize}")
			jobs := fs.IntP("jobs", "j", closure.DefaultJobs(), "paths hashed in parallel")
			quiet := fs.BoolP("quiet", "q", false, "no progress output")
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("no PATH given")
				}
				n := 0
				for _, b := range []bool{*base32, *base16, *sri} {
					if b {
						n++
					}
				}
				if n > 1 {
					return usagef("--base32, --base16 and --sri are exclusive")
				}
				if n == 0 && fs.Changed("base32") {
					return usagef("--base32=false: give --base16 or --sri for another form")
				}
				if *jobs < 1 {
					return usagef("--jobs must be at least 1")
				}
				format := closure.HashBase32
				if *base16 {
					format = closure.HashBase16
				} else if *sri {
					format = closure.HashSRI
				}
				res := make([]closure.NarResult, len(args))
				// Hash each PATH through the DirFS of its parent, grouped so
				// HashPaths runs them all in parallel.
				type item struct{ dir, name string }
				items := make([]item, len(args))
				for i, a := range args {
					abs, err := hashTarget(a)
					if err != nil {
						return err
					}
					if abs == "/" {
						items[i] = item{"/", "."}
					} else {
						items[i] = item{filepath.Dir(abs), filepath.Base(abs)}
					}
				}
				bar := progress.New(e.stderr, "hashing", -1, int64(len(args)), *quiet)
				defer bar.Finish()
				byDir := map[string][]int{}
				var dirs []string
				for i, it := range items {
					if _, ok := byDir[it.dir]; !ok {
						dirs = append(dirs, it.dir)
					}
					byDir[it.dir] = append(byDir[it.dir], i)
				}
				for _, d := range dirs {
					idx := byDir[d]
					names := make([]string, len(idx))
					for k, i := range idx {
						names[k] = items[i].name
					}
					r, err := closure.HashPaths(closure.DirFS(d), names, closure.HashOptions{Jobs: *jobs, Progress: func(_ int, n uint64) {
						bar.Add(int64(n))
						bar.Item()
					}})
					if err != nil {
						return err
					}
					for k, i := range idx {
						res[i] = r[k]
					}
				}
				w := bufio.NewWriter(e.stdout)
				if *asJSON {
					type out struct {
						Path    string `json:"path"`
						NarHash string `json:"narHash"`
						NarSize uint64 `json:"narSize"`
					}
					outs := make([]out, len(args))
					for i, a := range args {
						outs[i] = out{a, closure.FormatHash(res[i].Hash, format, format != closure.HashSRI), res[i].Size}
					}
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					if err := enc.Encode(outs); err != nil {
						return err
					}
				} else {
					for i := range args {
						fmt.Fprintln(w, closure.FormatHash(res[i].Hash, format, false))
					}
				}
				return w.Flush()
			}
		},
	}
}
