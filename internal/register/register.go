// Package register registers a closure's store paths with Nix, as a guest
// does at boot: it finds the registration named by regInfo= on the kernel
// command line, checks it fully, and hands the paths Nix does not know yet
// to the real `nix-store --load-db`, so that running it again does nothing.
package register

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/closurefs/closurefs/closure"
)

// ErrNoRegInfo is returned (wrapped) when the kernel command line has no
// regInfo= parameter.
var ErrNoRegInfo = errors.New("no regInfo= parameter")

// maxCmdline bounds the kernel command line read (Linux allows at most a
// few KiB; anything far larger is not a command line).
const maxCmdline = 1 << 20

// CmdlineParams splits a kernel command line into its parameters the way
// the kernel does: on whitespace, except inside double quotes, which are
// removed.
func CmdlineParams(cmdline string) []string {
	var params []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0):
			if have {
				params = append(params, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		params = append(params, cur.String())
	}
	return params
}

// RegInfoFromCmdline returns the value of the last regInfo= parameter of
// the kernel command line in the file name (normally /proc/cmdline).
func RegInfoFromCmdline(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("reading the kernel command line: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxCmdline+1)); err != nil {
		return "", fmt.Errorf("reading the kernel command line %s: %w", name, err)
	}
	if buf.Len() > maxCmdline {
		return "", fmt.Errorf("%s: longer than %d bytes, not a kernel command line", name, maxCmdline)
	}
	val, found := "", false
	for _, p := range CmdlineParams(buf.String()) {
		if v, ok := strings.CutPrefix(p, "regInfo="); ok {
			val, found = v, true
		}
	}
	if !found {
		return "", fmt.Errorf("%s: %w (give --reginfo FILE)", name, ErrNoRegInfo)
	}
	if val == "" {
		return "", fmt.Errorf("%s: regInfo= is empty", name)
	}
	return val, nil
}

// Nix runs nix-store.
type Nix struct {
	// NixStore is the nix-store program; "" means "nix-store" from PATH.
	NixStore string
	// Args are put before every nix-store command's own arguments, e.g.
	// ["--store", "local?state=/tmp/state"].
	Args []string
	// Env, if not nil, is the environment nix-store runs in (default: ours).
	Env []string
}

func (n *Nix) program() (string, error) {
	name := n.NixStore
	if name == "" {
		name = "nix-store"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("nix-store not found (%v); is Nix installed in the guest?", err)
	}
	return p, nil
}

// run runs nix-store with args and stdin, returning its standard output; a
// failure carries nix-store's error message.
func (n *Nix) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	prog, err := n.program()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, prog, append(append([]string{}, n.Args...), args...)...)
	cmd.Env = n.Env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("nix-store %s failed: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
}

// argBatch bounds the paths passed to one nix-store command line.
const argBatch = 500

// Invalid returns those of paths that Nix does not consider valid, in the
// order given, using `nix-store --check-validity --print-invalid`.
func (n *Nix) Invalid(ctx context.Context, paths []string) ([]string, error) {
	var invalid []string
	for len(paths) > 0 {
		b := paths[:min(argBatch, len(paths))]
		paths = paths[len(b):]
		out, err := n.run(ctx, nil, append([]string{"--check-validity", "--print-invalid"}, b...)...)
		if err != nil {
			return nil, err
		}
		bad := make(map[string]bool)
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" {
				bad[l] = true
			}
		}
		for _, p := range b {
			if bad[p] {
				invalid = append(invalid, p)
			}
		}
	}
	return invalid, nil
}

// LoadDB registers infos with `nix-store --load-db`. Nix registers them in
// one database transaction: on failure nothing is registered.
func (n *Nix) LoadDB(ctx context.Context, storeDir string, infos []closure.PathInfo) error {
	var buf bytes.Buffer
	// The dump-db format keeps derivers, which closureInfo's drops.
	if err := closure.WriteDumpDB(&buf, &closure.Closure{StoreDir: storeDir, Paths: infos}); err != nil {
		return err
	}
	_, err := n.run(ctx, buf.Bytes(), "--load-db")
	return err
}

// Result counts what Register did, or what Plan says it would do.
type Result struct {
	// Total is the number of paths in the registration.
	Total int `json:"total"`
	// AlreadyValid is how many Nix knew already (left untouched).
	AlreadyValid int `json:"alreadyValid"`
	// Registered is how many were registered now (or would be).
	Registered int `json:"registered"`
	// NarSize is the total NAR size of the registered (or to be
	// registered) paths.
	NarSize uint64 `json:"registeredNarSize"`
}

// Missing returns the paths of infos that are not in the physical store
// directory physDir (where the store paths can be read, normally the store
// directory itself).
func Missing(physDir string, infos []closure.PathInfo) ([]string, error) {
	var missing []string
	for _, p := range infos {
		_, err := os.Lstat(filepath.Join(physDir, path.Base(p.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, p.Path)
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// Register registers with Nix those of infos (a whole, already checked
// closure) that Nix does not know yet. Paths already valid are left alone,
// so a second run registers nothing.
func Register(ctx context.Context, nix *Nix, storeDir string, infos []closure.PathInfo) (*Result, error) {
	res, reg, err := Plan(ctx, nix, infos)
	if err != nil || len(reg) == 0 {
		return res, err
	}
	if err := nix.LoadDB(ctx, storeDir, reg); err != nil {
		return nil, err
	}
	return res, nil
}

// Plan returns what Register would do without doing it: the paths of
// infos that Nix does not know yet, in the order of infos, and the result
// of registering them.
func Plan(ctx context.Context, nix *Nix, infos []closure.PathInfo) (*Result, []closure.PathInfo, error) {
	res := &Result{Total: len(infos)}
	paths := make([]string, len(infos))
	for i, p := range infos {
		paths[i] = p.Path
	}
	invalid, err := nix.Invalid(ctx, paths)
	if err != nil {
		return nil, nil, err
	}
	res.AlreadyValid = len(infos) - len(invalid)
	todo := make(map[string]bool, len(invalid))
	for _, p := range invalid {
		todo[p] = true
	}
	var reg []closure.PathInfo
	for _, p := range infos {
		if todo[p.Path] {
			reg = append(reg, p)
			res.NarSize += p.NarSize
		}
	}
	res.Registered = len(reg)
	return res, reg, nil
}
