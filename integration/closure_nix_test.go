package integration_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/integration/fixture"
)

// clNix runs a Nix command and returns its standard output.
func clNix(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(clShorten(args), " "), err, stderr.String())
	}
	return out
}

func clShorten(args []string) []string {
	if len(args) > 6 {
		return append(slices.Clone(args[:6]), "...")
	}
	return args
}

func clLines(b []byte) []string { return strings.Fields(string(b)) }

// clDBClosure resolves roots from the fixture's Nix database.
func clDBClosure(t testing.TB, f *fixture.Fixture, roots ...string) *closure.Closure {
	t.Helper()
	db, err := closure.OpenDB(f.DB, f.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Resolve(roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clPaths(c *closure.Closure) []string {
	var ps []string
	for _, p := range c.Paths {
		ps = append(ps, p.Path)
	}
	return ps
}

func TestClosureDBMatchesNixStoreQR(t *testing.T) {
	f := fixture.Get(t)
	rootSets := [][]string{{f.Root}}
	for _, r := range f.Roots {
		rootSets = append(rootSets, []string{r})
	}
	rootSets = append(rootSets, f.Roots[:min(3, len(f.Roots))])
	for _, roots := range rootSets {
		want := clLines(clNix(t, "nix-store", append([]string{"-qR"}, roots...)...))
		slices.Sort(want)
		got := clPaths(clDBClosure(t, f, roots...))
		if !slices.Equal(got, want) {
			t.Errorf("closure of %v: got %d paths, nix-store -qR gives %d\n got %v\nwant %v", roots, len(got), len(want), got, want)
		}
	}
	if got := clPaths(clDBClosure(t, f, f.Root)); !slices.Equal(got, f.Paths) {
		t.Errorf("closure of the fixture root differs from fixture.Paths")
	}
}

// clExpectedRegistration builds what closureInfo writes for paths from
// `nix-store --dump-db` (records in sorted order) and `nix-store -q --hash`:
// the hash line replaced by the sha256:<base32> hash, the deriver emptied.
func clExpectedRegistration(t testing.TB, paths []string) []byte {
	t.Helper()
	raw := string(clNix(t, "nix-store", append([]string{"--dump-db"}, paths...)...))
	hashes := clLines(clNix(t, "nix-store", append([]string{"-q", "--hash"}, paths...)...))
	if len(hashes) != len(paths) {
		t.Fatalf("nix-store -q --hash printed %d hashes for %d paths", len(hashes), len(paths))
	}
	lines := strings.Split(strings.TrimSuffix(raw, "\n"), "\n")
	var out bytes.Buffer
	for i, k := 0, 0; i < len(lines); k++ {
		if lines[i] != paths[k] {
			t.Fatalf("dump-db record %d is %s, want %s", k, lines[i], paths[k])
		}
		n := 0
		for _, c := range lines[i+4] {
			n = n*10 + int(c-'0')
		}
		rec := append([]string{lines[i], hashes[k], lines[i+2], ""}, lines[i+4:i+5+n]...)
		out.WriteString(strings.Join(rec, "\n") + "\n")
		i += 5 + n
	}
	return out.Bytes()
}

func TestClosureRegistrationAndDumpDB(t *testing.T) {
	f := fixture.Get(t)
	c := clDBClosure(t, f, f.Root)
	var reg, dump bytes.Buffer
	if err := closure.WriteRegistration(&reg, c); err != nil {
		t.Fatal(err)
	}
	if err := closure.WriteDumpDB(&dump, c); err != nil {
		t.Fatal(err)
	}
	wantDump := clNix(t, "nix-store", append([]string{"--dump-db"}, f.Paths...)...)
	if !bytes.Equal(dump.Bytes(), wantDump) {
		t.Errorf("dump-db differs from nix-store --dump-db (%d vs %d bytes)", dump.Len(), len(wantDump))
	}
	if want := clExpectedRegistration(t, f.Paths); !bytes.Equal(reg.Bytes(), want) {
		t.Errorf("registration differs from closureInfo's expected bytes:\n%s\nwant\n%s", clHead(reg.Bytes()), clHead(want))
	}
	var sp bytes.Buffer
	closure.WriteStorePaths(&sp, c)
	if sp.String() != strings.Join(f.Paths, "\n")+"\n" {
		t.Errorf("store-paths differs from the sorted closure")
	}
	var total uint64
	for _, s := range clLines(clNix(t, "nix-store", append([]string{"-q", "--size"}, f.Paths...)...)) {
		var n uint64
		for _, c := range s {
			n = n*10 + uint64(c-'0')
		}
		total += n
	}
	if closure.TotalNarSize(c) != total {
		t.Errorf("total NAR size %d, nix-store -q --size sums to %d", closure.TotalNarSize(c), total)
	}
}

func clHead(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// TestClosureNAR checks every fixture path's NAR against nix-store --dump
// and nix-hash, in the plain and the optimised store.
func TestClosureNAR(t *testing.T) {
	f := fixture.Get(t)
	c := clDBClosure(t, f, f.Root)
	plain := closure.DirFS(f.StoreDir)
	opt := closure.DirFS(f.OptStoreDir)
	h := closure.NewNarHasher()
	for _, p := range c.Paths {
		base := path.Base(p.Path)
		// The NAR bytes themselves, compared as a stream digest.
		cmd := exec.Command("nix-store", "--dump", p.Path)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nixSum := sha256.New()
		nixLen, _ := io.Copy(nixSum, stdout)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("nix-store --dump %s: %v", p.Path, err)
		}
		ourSum := sha256.New()
		cw := &clCounter{w: ourSum}
		if err := closure.WriteNAR(cw, plain, base); err != nil {
			t.Fatalf("WriteNAR %s: %v", p.Path, err)
		}
		if !bytes.Equal(ourSum.Sum(nil), nixSum.Sum(nil)) || cw.n != nixLen {
			t.Errorf("%s: WriteNAR (%d bytes) differs from nix-store --dump (%d bytes)", p.Path, cw.n, nixLen)
		}
		nixHash := strings.TrimSpace(string(clNix(t, "nix-hash", "--type", "sha256", "--base32", p.Path)))
		for _, fsys := range []closure.DirFS{plain, opt} {
			d, n, err := h.Hash(fsys, base, nil)
			if err != nil {
				t.Fatalf("hashing %s in %s: %v", base, fsys, err)
			}
			if got := closure.EncodeBase32(d[:]); got != nixHash || d != p.NarHash || n != p.NarSize {
				t.Errorf("%s in %s: hash %s size %d, nix-hash says %s, DB says size %d", base, fsys, got, n, nixHash, p.NarSize)
			}
		}
	}
	// nar-hash of files inside store paths, including the odd names.
	for _, key := range []string{"name-latin1", "name-255", "name-255-utf8", "big-file", "symlink-255", "deep-bottom", "wide-dir"} {
		p, ok := f.Named[key]
		if !ok {
			continue
		}
		d, _, err := closure.HashNAR(closure.DirFS(filepath.Dir(p)), filepath.Base(p))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		want := strings.TrimSpace(string(clNix(t, "nix-hash", "--type", "sha256", "--base32", p)))
		if got := closure.EncodeBase32(d[:]); got != want {
			t.Errorf("%s: %s, nix-hash says %s", key, got, want)
		}
	}
	// Parallel hashing gives the same results whatever the job count.
	names := make([]string, len(c.Paths))
	for i, p := range c.Paths {
		names[i] = path.Base(p.Path)
	}
	for _, jobs := range []int{1, 4} {
		res, err := closure.HashPaths(opt, names, closure.HashOptions{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Hash != c.Paths[i].NarHash || r.Size != c.Paths[i].NarSize {
				t.Errorf("HashPaths -j%d: %s differs from the DB", jobs, names[i])
			}
		}
	}
}

type clCounter struct {
	w io.Writer
	n int64
}

func (c *clCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

func clEqualClosures(t testing.TB, what string, got, want *closure.Closure, derivers bool) {
	t.Helper()
	if len(got.Paths) != len(want.Paths) {
		t.Errorf("%s: %d paths, want %d", what, len(got.Paths), len(want.Paths))
		return
	}
	for i := range got.Paths {
		g, w := got.Paths[i], want.Paths[i]
		if !derivers {
			g.Deriver, w.Deriver = "", ""
		}
		if g.Path != w.Path || g.NarHash != w.NarHash || g.NarSize != w.NarSize || g.Deriver != w.Deriver ||
			!slices.Equal(g.References, w.References) {
			t.Errorf("%s: path %d differs:\n got %+v\nwant %+v", what, i, g, w)
			return
		}
	}
}

func TestClosureScanMatchesDB(t *testing.T) {
	f := fixture.Get(t)
	want := clDBClosure(t, f, f.Root)
	for _, dir := range []string{f.StoreDir, f.OptStoreDir} {
		s := &closure.Scanner{StoreDir: f.StoreDir, FS: closure.DirFS(dir), Options: closure.HashOptions{Jobs: 2}}
		got, err := s.Resolve([]string{f.Root})
		if err != nil {
			t.Fatal(err)
		}
		clEqualClosures(t, "scan of "+dir, got, want, false)
	}
}

func TestClosureRegistrationLoadsIntoNix(t *testing.T) {
	f := fixture.Get(t)
	c := clDBClosure(t, f, f.Root)
	var reg bytes.Buffer
	closure.WriteRegistration(&reg, c)
	store := t.TempDir()
	cmd := exec.Command("nix-store", "--store", store, "--load-db")
	cmd.Stdin = &reg
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix-store --load-db: %v\n%s", err, out)
	}
	got := clLines(clNix(t, "nix-store", "--store", store, "-qR", f.Root))
	slices.Sort(got)
	if !slices.Equal(got, f.Paths) {
		t.Errorf("closure in the fresh store has %d paths, want %d", len(got), len(f.Paths))
	}
	// And the fresh database, read by us, gives the same closure back.
	db, err := closure.OpenDB(filepath.Join(store, "nix/var/nix/db/db.sqlite"), f.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := db.Resolve([]string{f.Root})
	if err != nil {
		t.Fatal(err)
	}
	clEqualClosures(t, "re-loaded DB", again, c, false)
}

// clExportGraph builds a derivation that copies exportReferencesGraph
// output of root into $out, in the structured-attrs or the legacy format.
func clExportGraph(t testing.TB, root string, structured bool) string {
	t.Helper()
	dir := t.TempDir()
	var expr string
	if structured {
		expr = `derivation {
  name = "closurefs-test-attrs";
  system = builtins.currentSystem;
  builder = "/bin/bash";
  args = [ "-c" "source .attrs.sh; /bin/cat .attrs.json > \"\${outputs[out]}\"" ];
  __structuredAttrs = true;
  exportReferencesGraph.closure = [ (builtins.storePath "` + root + `") ];
}`
	} else {
		expr = `derivation {
  name = "closurefs-test-graph";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/bin/cp graph $out" ];
  exportReferencesGraph = [ "graph" (builtins.storePath "` + root + `") ];
}`
	}
	file := filepath.Join(dir, "default.nix")
	os.WriteFile(file, []byte(expr), 0o644)
	out := clNix(t, "nix-build", file, "--no-out-link", "--option", "sandbox", "false",
		"--option", "substituters", "", "--option", "build-users-group", "")
	return strings.TrimSpace(string(out))
}

func TestClosureSourcesAgree(t *testing.T) {
	f := fixture.Get(t)
	want := clDBClosure(t, f, f.Root)
	store := closure.DirFS(f.StoreDir)
	dir := t.TempDir()
	if err := closure.WriteClosureInfo(dir, want); err != nil {
		t.Fatal(err)
	}
	resolve := func(what string, src closure.Source, roots []string) {
		t.Helper()
		got, err := src.Resolve(roots)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		clEqualClosures(t, what, got, want, false)
	}
	infos, err := closure.ReadRegistrationFile(filepath.Join(dir, "registration"), f.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := closure.NewGraph(f.StoreDir, "registration", infos)
	if err != nil {
		t.Fatal(err)
	}
	resolve("registration, no roots", g, nil)
	resolve("registration, root", g, []string{f.Root})

	for _, structured := range []bool{true, false} {
		file := clExportGraph(t, f.Root, structured)
		infos, missing, err := closure.ReadAttrsFile(file, f.StoreDir)
		if err != nil {
			t.Fatal(err)
		}
		if missing == structured {
			t.Errorf("structured=%v: missing hashes = %v", structured, missing)
		}
		g, err := closure.NewGraph(f.StoreDir, file, infos)
		if err != nil {
			t.Fatal(err)
		}
		if missing {
			g.Hasher = &closure.Hasher{FS: store, Options: closure.HashOptions{Jobs: 2}}
		}
		resolve("exportReferencesGraph "+file, g, []string{f.Root})
	}

	sp, err := os.Open(filepath.Join(dir, "store-paths"))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := closure.ReadStorePaths(sp, "store-paths", f.StoreDir)
	sp.Close()
	if err != nil || !slices.Equal(paths, f.Paths) {
		t.Fatalf("store-paths: %v", err)
	}
	resolve("store-paths + scan", &closure.Scanner{StoreDir: f.StoreDir, FS: store, Candidates: paths}, []string{f.Root})
	resolve("scan", &closure.Scanner{StoreDir: f.StoreDir, FS: store, Options: closure.HashOptions{Jobs: 2}}, []string{f.Root})

	// Our JSON output reads back as attrs.
	var js bytes.Buffer
	closure.WriteJSON(&js, want)
	jinfos, missing, err := closure.ParseAttrs(&js, "json", f.StoreDir)
	if err != nil || missing {
		t.Fatalf("json: %v", err)
	}
	jg, _ := closure.NewGraph(f.StoreDir, "json", jinfos)
	resolve("json", jg, nil)
}

// TestClosureDBWhileNixWrites resolves closures while nix-build registers
// new paths in the same database.
func TestClosureDBWhileNixWrites(t *testing.T) {
	f := fixture.Get(t)
	want := clPaths(clDBClosure(t, f, f.Root))
	dir := t.TempDir()
	var roots []string
	expr := "let mk = i: derivation { name = \"closurefs-wal-${toString i}\"; system = builtins.currentSystem; builder = \"/bin/sh\";" +
		" args = [ \"-c\" \"/bin/sleep 0.1; echo ${toString i} " + filepath.Base(dir) + " $(/bin/date +%N) > $out\" ]; };" +
		" in map mk [ 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 ]"
	file := filepath.Join(dir, "wal.nix")
	os.WriteFile(file, []byte(expr), 0o644)
	cmd := exec.Command("nix-build", file, "--no-out-link", "--option", "sandbox", "false",
		"--option", "substituters", "", "--option", "build-users-group", "", "-j", "1")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	n := 0
loop:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("nix-build: %v", err)
			}
			break loop
		default:
		}
		db, err := closure.OpenDB(f.DB, f.StoreDir)
		if err != nil {
			t.Fatalf("open while nix-build runs: %v", err)
		}
		c, err := db.Resolve([]string{f.Root})
		db.Close()
		if err != nil {
			t.Fatalf("resolve while nix-build runs: %v", err)
		}
		if got := clPaths(c); !slices.Equal(got, want) {
			t.Fatalf("closure changed while nix-build runs")
		}
		n++
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		roots = append(roots, sc.Text())
	}
	if len(roots) != 20 {
		t.Fatalf("nix-build printed %d paths, want 20", len(roots))
	}
	t.Logf("%d resolutions during the build", n)
	// The new paths are visible to a fresh reader.
	c := clDBClosure(t, f, roots...)
	if len(c.Paths) != 20 {
		t.Errorf("new paths: closure of %d paths, want 20", len(c.Paths))
	}
	if _, err := os.Stat(f.DB + "-wal"); err != nil {
		t.Logf("note: no WAL file after the build: %v", err)
	}
}
