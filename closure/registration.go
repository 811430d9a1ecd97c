package closure

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxLineLen bounds one line of a registration: a store path is at most a
// few hundred bytes, so anything longer is malformed.
const maxLineLen = 64 << 10

// ParseError reports malformed input at a line of a named file.
type ParseError struct {
	File string // file name as given, or "-" for standard input
	Line int    // 1-based line number, 0 if not tied to a line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// lineReader reads newline-terminated lines, counting them.
type lineReader struct {
	r    *bufio.Reader
	file string
	line int
}

// next returns the next line without its newline. It returns io.EOF at
// a clean end of input and an error for a final line without a newline
// (nix-store --load-db rejects those too).
func (lr *lineReader) next() (string, error) {
	lr.line++
	b, err := lr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", lr.errorf("line longer than %d bytes", maxLineLen)
	}
	if err == io.EOF {
		if len(b) == 0 {
			return "", io.EOF
		}
		return "", lr.errorf("last line does not end with a newline")
	}
	if err != nil {
		return "", &ParseError{File: lr.file, Line: lr.line, Err: err}
	}
	return string(b[:len(b)-1]), nil
}

func (lr *lineReader) errorf(format string, args ...any) error {
	return &ParseError{File: lr.file, Line: lr.line, Err: fmt.Errorf(format, args...)}
}

// need reads a line that must be there, describing it (formatted only on
// error) as what and args.
func (lr *lineReader) need(what string, args ...any) (string, error) {
	s, err := lr.next()
	if err == io.EOF {
		return "", lr.errorf("truncated record: end of file, expected %s", fmt.Sprintf(what, args...))
	}
	return s, err
}

// parseCount parses a decimal count as Nix does: digits only, fitting the
// given number of bits.
func parseCount(s string, bits int) (uint64, error) {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("number expected, got %q", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("number %q out of range", s)
	}
	return n, nil
}

// ParseRegistration reads a validity registration, the format that
// `nix-store --load-db` reads and closureInfo's `registration` file and
// `nix-store --dump-db` write: for each path, its store path, NAR hash (any
// form ParseHash accepts), NAR size, deriver (may be empty), reference count
// and references, one per line.
//
// Unlike nix-store it also rejects a duplicate path and a reference to a path
// the registration does not describe, so what it accepts is a closure. name
// is used in errors, which are *ParseError values with the line number.
// The result is sorted by path, each path's references sorted.
func ParseRegistration(r io.Reader, name, storeDir string) ([]PathInfo, error) {
	return parseRecords(r, name, storeDir, true, true, "registration")
}

// ParseRegistrationOpen is ParseRegistration without the check that what
// the paths refer to is registered too: for checking a set of paths
// against it (verify), where such a reference is a finding to report, not
// a malformed file.
func ParseRegistrationOpen(r io.Reader, name, storeDir string) ([]PathInfo, error) {
	return parseRecords(r, name, storeDir, true, false, "registration")
}

// parseRecords reads the records that registrations and the legacy
// exportReferencesGraph format share: per path its store path, (withNar)
// NAR hash and size, deriver, reference count and references; if closed,
// every reference must be one of the paths. what names the whole in errors
// ("registration", "graph").
func parseRecords(r io.Reader, name, storeDir string, withNar, closed bool, what string) ([]PathInfo, error) {
	lr := &lineReader{r: bufio.NewReaderSize(r, maxLineLen), file: name}
	var infos []PathInfo
	seen := make(map[string]int) // path -> line
	type refLine struct {
		ref  string
		line int
	}
	var refLines []refLine
	for {
		path, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := ParseStorePath(storeDir, path); err != nil {
			return nil, lr.errorf("%v", err)
		}
		if l, dup := seen[path]; dup {
			return nil, lr.errorf("duplicate path %s (first at line %d)", path, l)
		}
		seen[path] = lr.line
		info := PathInfo{Path: path}
		var s string
		if withNar {
			if s, err = lr.need("the NAR hash of %s", path); err != nil {
				return nil, err
			}
			if info.NarHash, err = ParseHash(s); err != nil {
				return nil, lr.errorf("%v", err)
			}
			if s, err = lr.need("the NAR size of %s", path); err != nil {
				return nil, err
			}
			if info.NarSize, err = parseCount(s, 64); err != nil {
				return nil, lr.errorf("NAR size of %s: %v", path, err)
			}
		}
		if s, err = lr.need("the deriver of %s", path); err != nil {
			return nil, err
		}
		if s != "" {
			if _, err := ParseStorePath(storeDir, s); err != nil {
				return nil, lr.errorf("deriver of %s: %v", path, err)
			}
		}
		info.Deriver = s
		if s, err = lr.need("the reference count of %s", path); err != nil {
			return nil, err
		}
		n, err := parseCount(s, 31)
		if err != nil {
			return nil, lr.errorf("reference count of %s: %v", path, err)
		}
		for i := uint64(0); i < n; i++ {
			ref, err := lr.need("reference %d of %d of %s", i+1, n, path)
			if err != nil {
				return nil, err
			}
			if _, err := ParseStorePath(storeDir, ref); err != nil {
				return nil, lr.errorf("reference of %s: %v", path, err)
			}
			info.References = append(info.References, ref)
			refLines = append(refLines, refLine{ref, lr.line})
		}
		slices.Sort(info.References)
		info.References = slices.Compact(info.References)
		infos = append(infos, info)
	}
	for _, rl := range refLines {
		if _, ok := seen[rl.ref]; !ok && closed {
			return nil, &ParseError{File: name, Line: rl.line, Err: fmt.Errorf("reference %s is not in the %s", rl.ref, what)}
		}
	}
	slices.SortFunc(infos, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) })
	return infos, nil
}

// ReadRegistrationFile parses the registration file at path (see
// ParseRegistration).
func ReadRegistrationFile(path, storeDir string) ([]PathInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseRegistration(f, path, storeDir)
}

// byBaseName returns c's paths sorted by base name, the order of Nix's
// StorePathSet and so of closureInfo. All paths are in one store directory,
// so that is the order of the full paths.
func byBaseName(c *Closure) []PathInfo {
	if slices.IsSortedFunc(c.Paths, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) }) {
		return c.Paths
	}
	ps := slices.Clone(c.Paths)
	slices.SortFunc(ps, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) })
	return ps
}

// sortedRefs returns refs sorted (by base name, as they share the store
// directory).
func sortedRefs(refs []string) []string {
	if slices.IsSorted(refs) {
		return refs
	}
	r := slices.Clone(refs)
	slices.Sort(r)
	return r
}

// writeValidity writes c in the validity registration format with hashes
// in the given form and derivers if withDeriver.
func writeValidity(w io.Writer, c *Closure, hash func([32]byte) string, withDeriver bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	num := make([]byte, 0, 24)
	for _, p := range byBaseName(c) {
		deriver := ""
		if withDeriver {
			deriver = p.Deriver
		}
		num = num[:0]
		bw.WriteString(p.Path)
		bw.WriteByte('\n')
		bw.WriteString(hash(p.NarHash))
		bw.WriteByte('\n')
		bw.Write(strconv.AppendUint(num, p.NarSize, 10))
		bw.WriteByte('\n')
		bw.WriteString(deriver)
		bw.WriteByte('\n')
		bw.Write(strconv.AppendInt(num, int64(len(p.References)), 10))
		bw.WriteByte('\n')
		for _, r := range sortedRefs(p.References) {
			bw.WriteString(r)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// WriteRegistration writes c's `registration` file exactly as nixpkgs'
// closureInfo does: paths sorted by base name, each as path,
// "sha256:<nix-base32 NAR hash>", NAR size, an empty deriver line, the
// reference count and the sorted references.
func WriteRegistration(w io.Writer, c *Closure) error {
	return writeValidity(w, c, func(h [32]byte) string { return FormatHash(h, HashBase32, true) }, false)
}

// WriteDumpDB writes c as `nix-store --dump-db PATH...` prints it for the
// closure's paths in sorted order: base16 hashes without prefix, derivers.
func WriteDumpDB(w io.Writer, c *Closure) error {
	return writeValidity(w, c, func(h [32]byte) string { return FormatHash(h, HashBase16, false) }, true)
}

// WriteStorePaths writes c's `store-paths` file as closureInfo does: one
// path per line, sorted by base name.
func WriteStorePaths(w io.Writer, c *Closure) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, p := range byBaseName(c) {
		bw.WriteString(p.Path)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// TotalNarSize returns the sum of the NAR sizes of c's paths.
func TotalNarSize(c *Closure) uint64 {
	var n uint64
	for _, p := range c.Paths {
		n += p.NarSize
	}
	return n
}

// WriteTotalNarSize writes c's `total-nar-size` file as closureInfo does.
func WriteTotalNarSize(w io.Writer, c *Closure) error {
	_, err := fmt.Fprintf(w, "%d\n", TotalNarSize(c))
	return err
}

// WriteClosureInfo writes the three closureInfo files (registration,
// store-paths, total-nar-size) into dir, creating it if needed. Each file is
// written to a temporary file in dir, synced, and renamed into place only
// once all three are complete, so a failed run leaves no partial file.
func WriteClosureInfo(dir string, c *Closure) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(io.Writer, *Closure) error
	}{
		{"registration", WriteRegistration},
		{"store-paths", WriteStorePaths},
		{"total-nar-size", WriteTotalNarSize},
	}
	var temps []string
	defer func() {
		if err != nil {
			for _, t := range temps {
				os.Remove(t)
			}
		}
	}()
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.write(&buf, c); err != nil {
			return err
		}
		t, err := writeTemp(dir, f.name, buf.Bytes())
		if t != "" {
			temps = append(temps, t)
		}
		if err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// writeTemp writes data to a new temporary file in dir, synced, and returns
// its name.
func writeTemp(dir, name string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return "", err
	}
	t := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return t, fmt.Errorf("writing %s: %w", t, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return t, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return t, fmt.Errorf("syncing %s: %w", t, err)
	}
	return t, f.Close()
}

// WriteFileAtomic writes data to path through a synced temporary file in
// the same directory that is renamed into place.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	t, err := writeTemp(dir, filepath.Base(path), data)
	if err != nil {
		if t != "" {
			os.Remove(t)
		}
		return err
	}
	if err := os.Rename(t, path); err != nil {
		os.Remove(t)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
