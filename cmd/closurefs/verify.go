package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/progress"
	"github.com/closurefs/closurefs/internal/register"
	"github.com/closurefs/closurefs/internal/verify"
	"github.com/spf13/pflag"
)

// nonStoreEntries are root entries of a store tree that are neither store
// paths nor extra: the in-image registration, Nix's hard-link directory
// and a file system's lost+found.
var nonStoreEntries = []string{image.RegistrationName, ".links", "lost+found"}

// logicalStoreDir is the store directory registrations name paths in.
func logicalStoreDir() string {
	if d := os.Getenv("NIX_STORE_DIR"); d != "" {
		return d
	}
	return closure.DefaultStoreDir
}

// openStoreTree opens TARGET: a directory (a store directory or a mounted
// image) is read as it is, a file or block device as an erofs or squashfs
// image. close releases it.
func openStoreTree(target string) (fsys image.FS, isDir bool, close func() error, err error) {
	fi, err := os.Stat(target)
	if err != nil {
		return nil, false, nil, err
	}
	if fi.IsDir() {
		return closure.DirFS(target), true, func() error { return nil }, nil
	}
	img, err := openImage(target)
	if err != nil {
		return nil, false, nil, err
	}
	return img.FS, false, img.Close, nil
}

// expectation is what a tree is verified against.
type expectation struct {
	infos  []closure.PathInfo
	source string   // described for the summary
	ignore []string // root entries that are not extra (a closure-info path found in the tree)
	extra  []string // root store paths the DB does not know (with --db)
}

// parseRegistration reads a registration that must name at least one
// store path: an empty one is a truncated or failed write, and checking
// against it would pass anything. If open, its paths may refer to paths
// it does not describe (verify reports those references).
func parseRegistration(r io.Reader, name, storeDir string, open bool) ([]closure.PathInfo, error) {
	parse := closure.ParseRegistration
	if open {
		parse = closure.ParseRegistrationOpen
	}
	infos, err := parse(r, name, storeDir)
	if err == nil && len(infos) == 0 {
		err = fmt.Errorf("%s: empty registration: no store paths in it", name)
	}
	return infos, err
}

// registrationFile returns path, or the registration in it if path is a
// closureInfo directory.
func registrationFile(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, "registration")
	}
	return path
}

// readRegistration is parseRegistration of registrationFile(path).
func readRegistration(path, storeDir string, open bool) ([]closure.PathInfo, error) {
	path = registrationFile(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseRegistration(f, path, storeDir, open)
}

// verifySource picks the expected contents: --registration, --closure-info,
// --db, or the registration inside the tree.
func verifySource(fsys image.FS, target, regFile, ciDir, db, storeDir string) (*expectation, error) {
	n := 0
	for _, s := range []string{regFile, ciDir, db} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, usagef("give at most one of --registration, --closure-info and --db")
	}
	switch {
	case regFile != "":
		infos, err := readRegistration(regFile, storeDir, true)
		return &expectation{infos: infos, source: regFile}, err
	case ciDir != "":
		f := filepath.Join(ciDir, "registration")
		infos, err := readRegistration(f, storeDir, true)
		return &expectation{infos: infos, source: f}, err
	case db != "":
		return dbExpectation(fsys, target, db, storeDir)
	}
	return inTreeExpectation(fsys, target, storeDir)
}

// inTreeExpectation reads the registration the tree carries: the
// nix-path-registration file at its root or, failing that, the one
// closure-info store path in it.
func inTreeExpectation(fsys image.FS, target, storeDir string) (*expectation, error) {
	name := target + "/" + image.RegistrationName
	f, err := fsys.Open(image.RegistrationName)
	if err == nil {
		defer f.Close()
		infos, err := parseRegistration(f, name, storeDir, true)
		return &expectation{infos: infos, source: name}, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%s: listing the root: %w", target, err)
	}
	var found []string
	for _, e := range ents {
		if _, err := closure.ParseBaseName(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		ok := true
		for _, f := range []string{"registration", "store-paths"} {
			if fi, err := fsys.Lstat(e.Name() + "/" + f); err != nil || !fi.Mode().IsRegular() {
				ok = false
			}
		}
		if ok {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s holds no registration (no %s, no closure-info path); give --registration, --closure-info or --db", target, image.RegistrationName)
	case 1:
	default:
		return nil, fmt.Errorf("%s holds several closure-info paths (%s); pick one with --closure-info", target, strings.Join(found, ", "))
	}
	rel := found[0] + "/registration"
	f, err = fsys.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", target, rel, err)
	}
	defer f.Close()
	infos, err := parseRegistration(f, target+"/"+rel, storeDir, true)
	return &expectation{infos: infos, source: target + "/" + rel, ignore: found}, err
}

func verifyCommand() *command {
	return &command{
		name:    "verify",
		summary: "check an image, mount or store directory against NAR hashes",
		usage:   "TARGET [--registration FILE | --closure-info DIR | --db[=DB]] [flags]",
		help: `TARGET is an erofs or squashfs image file (read directly, no mount), a
mounted image or a store directory. Every registered path must be present
with its registered NAR size and SHA-256 NAR hash. The registration comes
from --registration, --closure-info, the Nix database (--db: the closure of
the store paths in TARGET), or by default from TARGET itself (its
nix-path-registration file, or the closure-info store path it holds).

Reports missing paths, extra paths (present but not registered), mismatched
and corrupt (unreadable) paths, and references leaving the set; with
--against STOREDIR the first differing file of a mismatched path. The
conventions of a store image (owner root, modes 0444/0555, directories 0555,
no setuid/setgid, no device files, one fixed mtime) are checked as warnings.
Exit status: 0 all good, 1 a problem found, 2 usage.`,
		setup: func(fl *pflag.FlagSet, e *env) func([]string) error {
			var regFile, ciDir, db, against, extra string
			var jobs int
			var quiet, asJSON, noConv bool
			var mtime int64
			storeDir := logicalStoreDir()
			fl.StringVar(&regFile, "registration", "", "registration to verify against: a file (closureInfo's registration or nix-store --dump-db output) or a closureInfo directory")
			fl.StringVar(&ciDir, "closure-info", "", "closure-info directory whose registration to verify against")
			fl.StringVar(&db, "db", "", "verify against the Nix database (default path "+closure.DefaultDBPath+")")
			fl.Lookup("db").NoOptDefVal = closure.DefaultDBPath
			fl.StringVar(&against, "against", "", "store directory to compare mismatched paths with, naming the first differing file")
			fl.StringVar(&extra, "extra", "auto", "paths present but not registered: fail, warn or ignore (auto: ignore when TARGET is the store directory, else fail)")
			fl.StringVar(&storeDir, "store-dir", storeDir, "logical store directory of the registered paths")
			fl.BoolVar(&noConv, "no-conventions", false, "do not check the store-image conventions")
			fl.Int64Var(&mtime, "mtime", -1, "the fixed mtime every entry should have (default: the most common one)")
			fl.IntVarP(&jobs, "jobs", "j", 0, "paths hashed in parallel (default: number of CPUs)")
			fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar, no summary: only problems")
			fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("verify takes exactly one TARGET")
				}
				target := args[0]
				var policy verify.ExtraPolicy
				switch extra {
				case "fail":
					policy = verify.ExtraFail
				case "warn":
					policy = verify.ExtraWarn
				case "ignore":
					policy = verify.ExtraIgnore
				case "auto":
					policy = verify.ExtraFail
					if sameDir(target, storeDir) {
						policy = verify.ExtraIgnore
					}
				default:
					return usagef("--extra %q: want fail, warn, ignore or auto", extra)
				}
				if jobs < 0 {
					return usagef("-j %d: must be positive", jobs)
				}
				fsys, _, closeFS, err := openStoreTree(target)
				if err != nil {
					return err
				}
				defer closeFS()
				exp, err := verifySource(fsys, target, regFile, ciDir, db, storeDir)
				if err != nil {
					return err
				}
				opt := verify.Options{
					StoreDir: storeDir, Jobs: jobs, Extra: policy,
					Ignore:        append(slices.Clone(nonStoreEntries), exp.ignore...),
					NoConventions: noConv,
				}
				if mtime >= 0 {
					opt.Mtime = &mtime
				}
				if against != "" {
					if fi, err := os.Stat(against); err != nil || !fi.IsDir() {
						return usagef("--against %s: not a directory", against)
					}
					opt.Against = closure.DirFS(against)
				}
				start := time.Now()
				rep, err := runCheck(e, fsys, exp.infos, opt, quiet || asJSON, "verifying "+filepath.Base(target))
				if err != nil {
					return err
				}
				if policy != verify.ExtraIgnore {
					for _, b := range exp.extra {
						rep.Extra = append(rep.Extra, storeDir+"/"+b)
					}
					slices.Sort(rep.Extra)
				}
				elapsed := time.Since(start)
				if asJSON {
					out := struct {
						Target  string  `json:"target"`
						Source  string  `json:"source"`
						Passed  bool    `json:"passed"`
						Seconds float64 `json:"seconds"`
						*verify.Report
					}{target, exp.source, !rep.Failed(), elapsed.Seconds(), rep}
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(out); err != nil {
						return err
					}
				} else {
					printReport(e.stdout, rep, policy)
					if !quiet {
						fmt.Fprintf(e.stdout, "%s: %s\n", target, summaryLine(rep, exp.source, elapsed))
					}
				}
				if rep.Failed() {
					return &exitError{exitFailure}
				}
				return nil
			}
		},
	}
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// runCheck runs verify.Check with a progress bar on stderr and SIGINT and
// SIGTERM cancelling.
func runCheck(e *env, fsys image.FS, infos []closure.PathInfo, opt verify.Options, quiet bool, desc string) (*verify.Report, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var total uint64
	for _, p := range infos {
		total += p.NarSize
	}
	bar := progress.New(e.stderr, desc, int64(total), int64(len(infos)), quiet)
	if bar != nil {
		opt.Progress = bar.Add
		opt.PathDone = bar.Item
	}
	rep, err := verify.Check(ctx, fsys, infos, opt)
	bar.Finish()
	if err != nil && ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	return rep, err
}

// printReport prints one line per problem and per warning.
func printReport(w io.Writer, rep *verify.Report, policy verify.ExtraPolicy) {
	if rep.RootError != "" {
		fmt.Fprintf(w, "UNREADABLE root: %s\n", rep.RootError)
	}
	for _, p := range rep.Paths {
		switch p.Status {
		case verify.StatusMissing:
			fmt.Fprintf(w, "MISSING  %s\n", p.Path)
		case verify.StatusCorrupt:
			fmt.Fprintf(w, "CORRUPT  %s: %s\n", p.Path, p.Detail)
		case verify.StatusMismatch:
			got := p.GotHash
			if got == "" {
				got = "(not computed)"
			}
			fmt.Fprintf(w, "MISMATCH %s: NAR hash %s, registered %s; NAR size %d, registered %d\n", p.Path, got, p.WantHash, p.GotSize, p.WantSize)
			if p.Detail != "" {
				fmt.Fprintf(w, "         %s\n", p.Detail)
			}
		}
	}
	label := "EXTRA   "
	if policy == verify.ExtraWarn {
		label = "warning: extra"
	}
	for _, x := range rep.Extra {
		fmt.Fprintf(w, "%s %s (present, not registered)\n", label, x)
	}
	for _, r := range rep.OutsideRefs {
		fmt.Fprintf(w, "OUTSIDE  %s refers to %s, which is not in the registration\n", r.From, r.To)
	}
	const maxWarn = 20
	for i, wn := range rep.Warnings {
		if i == maxWarn {
			fmt.Fprintf(w, "warning: ... and %d more warnings (see --json)\n", len(rep.Warnings)-maxWarn)
			break
		}
		more := ""
		if wn.Count > 1 {
			more = fmt.Sprintf(" (and %d more in this store path)", wn.Count-1)
		}
		fmt.Fprintf(w, "warning: %s: %s%s\n", wn.Path, wn.Detail, more)
	}
}

func summaryLine(rep *verify.Report, source string, elapsed time.Duration) string {
	verdict := "OK"
	if rep.Failed() {
		verdict = "FAILED"
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(rep.NarBytes) / s / (1 << 20)
	}
	return fmt.Sprintf("%s: %d paths against %s: %d ok, %d mismatched, %d missing, %d corrupt, %d extra, %d outside references, %d warnings; %s hashed in %.2fs (%.0f MiB/s)",
		verdict, len(rep.Paths), source, rep.OK, rep.Mismatched, rep.Missing, rep.Corrupt, len(rep.Extra), len(rep.OutsideRefs), len(rep.Warnings),
		humanBytes(int64(rep.NarBytes)), elapsed.Seconds(), rate)
}

func registerCommand() *command {
	return &command{
		name:    "register",
		summary: "register a closure's store paths with Nix (at boot, from regInfo=)",
		usage:   "[--reginfo FILE] [--verify] [flags]",
		help: `Reads the registration named by regInfo= on the kernel command line (as
NixOS and microvm.nix pass it), or --reginfo FILE, checks it fully and checks
that its paths are in the store, optionally verifies their NAR hashes
(--verify), then registers with 'nix-store --load-db' only the paths Nix
does not know yet: a second run with a persistent database does nothing.
A malformed registration or a missing path leaves the database untouched.`,
		setup: func(fl *pflag.FlagSet, e *env) func([]string) error {
			var regFile, cmdline, storeURI, nixStore string
			var doVerify, dryRun, quiet, asJSON bool
			var jobs int
			storeDir := logicalStoreDir()
			phys := ""
			fl.StringVar(&regFile, "reginfo", "", "registration file or closureInfo directory (default: regInfo= from the kernel command line)")
			fl.StringVar(&cmdline, "cmdline", "/proc/cmdline", "kernel command line file to take regInfo= from")
			fl.StringVar(&phys, "store-dir", "", "directory the store paths are mounted at (default: the store directory, "+storeDir+")")
			fl.BoolVar(&doVerify, "verify", false, "verify every path's NAR hash before registering")
			fl.StringVar(&nixStore, "nix-store", "nix-store", "nix-store program to run")
			fl.StringVar(&storeURI, "store", "", "passed to nix-store as --store (e.g. 'local?state=/tmp/state')")
			fl.BoolVarP(&dryRun, "dry-run", "n", false, "check and count, but register nothing")
			fl.IntVarP(&jobs, "jobs", "j", 0, "paths hashed in parallel with --verify (default: number of CPUs)")
			fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar and no summary")
			fl.BoolVar(&asJSON, "json", false, "print the counts as JSON")
			return func(args []string) error {
				if len(args) != 0 {
					return usagef("register takes no arguments")
				}
				if phys == "" {
					phys = storeDir
				}
				if regFile == "" {
					var err error
					if regFile, err = register.RegInfoFromCmdline(cmdline); err != nil {
						return err
					}
				}
				infos, err := readRegistration(regFile, storeDir, false)
				if err != nil {
					return fmt.Errorf("registration: %w", err)
				}
				missing, err := register.Missing(phys, infos)
				if err != nil {
					return err
				}
				if len(missing) > 0 {
					show := missing[:min(5, len(missing))]
					return fmt.Errorf("%d of the %d paths of %s are not in %s (e.g. %s); nothing registered", len(missing), len(infos), regFile, phys, strings.Join(show, ", "))
				}
				if doVerify {
					fsys := closure.DirFS(phys)
					rep, err := runCheck(e, fsys, infos, verify.Options{StoreDir: storeDir, Jobs: jobs, Extra: verify.ExtraIgnore, NoConventions: true}, quiet || asJSON, "verifying")
					if err != nil {
						return err
					}
					if rep.Failed() {
						printReport(e.stderr, rep, verify.ExtraIgnore)
						return fmt.Errorf("verification of %s failed: %d mismatched, %d missing, %d corrupt; nothing registered", phys, rep.Mismatched, rep.Missing, rep.Corrupt)
					}
				}
				nix := &register.Nix{NixStore: nixStore}
				if storeURI != "" {
					nix.Args = []string{"--store", storeURI}
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				var res *register.Result
				if dryRun {
					if res, _, err = register.Plan(ctx, nix, infos); err != nil {
						return err
					}
				} else if res, err = register.Register(ctx, nix, storeDir, infos); err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					return enc.Encode(struct {
						Registration string `json:"registration"`
						DryRun       bool   `json:"dryRun"`
						*register.Result
					}{regFile, dryRun, res})
				}
				if !quiet {
					verb := "registered"
					if dryRun {
						verb = "would register"
					}
					n := res.Total - res.AlreadyValid
					fmt.Fprintf(e.stdout, "%s: %s %d paths (%s), %d already valid, %d in all\n", regFile, verb, n, humanBytes(int64(res.NarSize)), res.AlreadyValid, res.Total)
				}
				return nil
			}
		},
	}
}
