package closure

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// maxJSONSize caps the size of a JSON input read into memory.
const maxJSONSize = 1 << 30

// jsonPathInfo is one path as exportReferencesGraph (structured attrs),
// `nix path-info --json` and WriteJSON describe it.
type jsonPathInfo struct {
	Path       string    `json:"path"`
	NarHash    string    `json:"narHash"`
	NarSize    *uint64   `json:"narSize"`
	References *[]string `json:"references"`
	// ClosureSize is written, not read: sources keep no closure sizes.
	ClosureSize uint64 `json:"closureSize,omitempty"`
	Deriver     string `json:"deriver,omitempty"`
}

// jsonClosure is the document WriteJSON writes.
type jsonClosure struct {
	StoreDir string         `json:"storeDir"`
	Roots    []string       `json:"roots"`
	Closure  []jsonPathInfo `json:"closure"`
}

// WriteJSON writes c as a JSON object with the keys storeDir, roots and
// closure; closure is an array of path infos in the form exportReferencesGraph
// gives them to structured-attrs builders (path, narHash as
// "sha256:<nix-base32>", narSize, references, closureSize), and deriver if
// known, so ParseAttrs reads it back.
func WriteJSON(w io.Writer, c *Closure) error {
	doc := jsonClosure{StoreDir: c.StoreDir, Roots: c.Roots, Closure: make([]jsonPathInfo, len(c.Paths))}
	if doc.Roots == nil {
		doc.Roots = []string{}
	}
	sizes := c.ClosureSizes()
	for i, p := range byBaseName(c) {
		refs := sortedRefs(p.References)
		if refs == nil {
			refs = []string{}
		}
		size := p.NarSize
		doc.Closure[i] = jsonPathInfo{Path: p.Path, NarHash: FormatHash(p.NarHash, HashBase32, true),
			NarSize: &size, References: &refs, ClosureSize: sizes[p.Path], Deriver: p.Deriver}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// ParseAttrs reads exportReferencesGraph output: either the structured-attrs
// JSON (the builder's .attrs.json / $NIX_ATTRS_JSON_FILE, where each name in
// the exportReferencesGraph attribute holds an array of path infos; a bare
// such array; or WriteJSON's output) or the legacy text format written for
// non-structured derivations (path, empty deriver line, reference count,
// references). The legacy format has no NAR hashes: they are returned as
// zero and missing is true. name is used in errors.
func ParseAttrs(r io.Reader, name, storeDir string) (infos []PathInfo, missingHashes bool, err error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil {
			if err == io.EOF {
				return nil, false, &ParseError{File: name, Err: errors.New("empty input")}
			}
			return nil, false, err
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' {
			br.ReadByte()
			continue
		}
		if b[0] == '{' || b[0] == '[' {
			infos, err := parseAttrsJSON(br, name, storeDir)
			return infos, false, err
		}
		infos, err := parseLegacyGraph(br, name, storeDir)
		return infos, true, err
	}
}

// ReadAttrsFile reads the exportReferencesGraph output at path (see
// ParseAttrs).
func ReadAttrsFile(path, storeDir string) ([]PathInfo, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return ParseAttrs(f, path, storeDir)
}

func parseAttrsJSON(r io.Reader, name, storeDir string) ([]PathInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJSONSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJSONSize {
		return nil, &ParseError{File: name, Err: fmt.Errorf("larger than %d bytes", maxJSONSize)}
	}
	jerr := func(err error) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return &ParseError{File: name, Line: lineAt(data, se.Offset), Err: fmt.Errorf("invalid JSON: %v", err)}
		case errors.As(err, &te):
			return &ParseError{File: name, Line: lineAt(data, te.Offset), Err: fmt.Errorf("invalid JSON: %v", err)}
		}
		return &ParseError{File: name, Err: err}
	}
	if !json.Valid(data) {
		var v any
		return nil, jerr(json.Unmarshal(data, &v))
	}
	type list struct {
		key   string
		items []jsonPathInfo
	}
	var lists []list
	if bytes.TrimSpace(data)[0] == '[' {
		var items []jsonPathInfo
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, jerr(err)
		}
		lists = append(lists, list{"", items})
	} else {
		top, offs, err := topLevel(data)
		if err != nil {
			return nil, jerr(err)
		}
		var keys []string
		if erg, ok := top["exportReferencesGraph"]; ok {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(erg, &m); err != nil {
				return nil, &ParseError{File: name, Err: fmt.Errorf("exportReferencesGraph is not an object: %v", err)}
			}
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
		} else if _, ok := top["closure"]; ok {
			keys = []string{"closure"}
		} else {
			return nil, &ParseError{File: name, Err: errors.New("no exportReferencesGraph attribute and no closure key")}
		}
		for _, k := range keys {
			raw, ok := top[k]
			if !ok {
				return nil, &ParseError{File: name, Err: fmt.Errorf("exportReferencesGraph names %q, which is missing", k)}
			}
			var items []jsonPathInfo
			if err := json.Unmarshal(raw, &items); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) {
					return nil, &ParseError{File: name, Line: lineAt(data, offs[k]+te.Offset), Err: fmt.Errorf("%s: %v", k, err)}
				}
				return nil, &ParseError{File: name, Err: fmt.Errorf("%s: %v", k, err)}
			}
			lists = append(lists, list{k, items})
		}
	}
	seen := make(map[string]*PathInfo)
	var infos []PathInfo
	for _, l := range lists {
		for i, it := range l.items {
			where := fmt.Sprintf("%s[%d]", l.key, i)
			bad := func(format string, args ...any) error {
				return &ParseError{File: name, Err: fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))}
			}
			if it.Path == "" {
				return nil, bad("missing path")
			}
			if _, err := ParseStorePath(storeDir, it.Path); err != nil {
				return nil, bad("%v", err)
			}
			if it.NarHash == "" {
				return nil, bad("%s: missing narHash", it.Path)
			}
			h, err := ParseHash(it.NarHash)
			if err != nil {
				return nil, bad("%s: %v", it.Path, err)
			}
			if it.NarSize == nil {
				return nil, bad("%s: missing narSize", it.Path)
			}
			if it.References == nil {
				return nil, bad("%s: missing references", it.Path)
			}
			if it.Deriver != "" {
				if _, err := ParseStorePath(storeDir, it.Deriver); err != nil {
					return nil, bad("%s: deriver: %v", it.Path, err)
				}
			}
			refs := slices.Clone(*it.References)
			for _, ref := range refs {
				if _, err := ParseStorePath(storeDir, ref); err != nil {
					return nil, bad("%s: reference: %v", it.Path, err)
				}
			}
			slices.Sort(refs)
			refs = slices.Compact(refs)
			info := PathInfo{Path: it.Path, NarHash: h, NarSize: *it.NarSize, References: refs, Deriver: it.Deriver}
			if old := seen[it.Path]; old != nil {
				// Several exportReferencesGraph closures may share paths;
				// they must agree.
				if old.NarHash != info.NarHash || old.NarSize != info.NarSize || !slices.Equal(old.References, info.References) {
					return nil, bad("%s is described twice, differently", it.Path)
				}
				continue
			}
			infos = append(infos, info)
			seen[it.Path] = &infos[len(infos)-1]
		}
	}
	set := make(map[string]bool, len(infos))
	for _, p := range infos {
		set[p.Path] = true
	}
	for _, p := range infos {
		for _, ref := range p.References {
			if !set[ref] {
				return nil, &ParseError{File: name, Err: fmt.Errorf("%s refers to %s, which is not in the graph", p.Path, ref)}
			}
		}
	}
	slices.SortFunc(infos, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) })
	return infos, nil
}

// topLevel splits a JSON object into its members, returning each value's
// byte offset in data too.
func topLevel(data []byte) (map[string]json.RawMessage, map[string]int64, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	top := make(map[string]json.RawMessage)
	offs := make(map[string]int64)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		off := dec.InputOffset()
		for off < int64(len(data)) && bytes.IndexByte([]byte(" \t\r\n:"), data[off]) >= 0 {
			off++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, err
		}
		top[key], offs[key] = raw, off
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("data after the top-level JSON object")
	}
	return top, offs, nil
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// parseLegacyGraph reads the text format Nix writes for exportReferencesGraph
// without structured attrs: per path its store path, an (empty) deriver line,
// the reference count and the references.
func parseLegacyGraph(r io.Reader, name, storeDir string) ([]PathInfo, error) {
	return parseRecords(r, name, storeDir, false, true, "graph")
}

// ReadStorePaths reads a store-paths file (writeClosure's output, one store
// path per line) and returns its paths, sorted.
func ReadStorePaths(r io.Reader, name, storeDir string) ([]string, error) {
	lr := &lineReader{r: bufio.NewReaderSize(r, maxLineLen), file: name}
	seen := make(map[string]bool)
	var paths []string
	for {
		p, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := ParseStorePath(storeDir, p); err != nil {
			return nil, lr.errorf("%v", err)
		}
		if seen[p] {
			return nil, lr.errorf("duplicate path %s", p)
		}
		seen[p] = true
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths, nil
}
