package closure

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// DefaultDBPath is where Nix keeps its database by default.
const DefaultDBPath = "/nix/var/nix/db/db.sqlite"

// DB is a Source reading the Nix SQLite database read-only. It is safe to
// use while Nix has the database open (Nix uses WAL mode, so readers see a
// consistent snapshot and never block or disturb it).
type DB struct {
	// StoreDir is the store directory the database describes.
	StoreDir string
	path     string
	db       *sql.DB
}

// OpenDB opens the Nix database at path read-only.
func OpenDB(path, storeDir string) (*DB, error) {
	// mode=ro: never write (no journal, no checkpoint); busy_timeout rides
	// out the moments Nix holds an exclusive lock (WAL recovery).
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening Nix database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening Nix database %s: %w", path, err)
	}
	return &DB{StoreDir: storeDir, path: path, db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// closureQuery selects the ids in the closure of the root ids in the
// temporary table roots.
const closureCTE = `WITH RECURSIVE cl(id) AS (
	SELECT id FROM ValidPaths WHERE path IN (SELECT value FROM json_each(?))
	UNION
	SELECT r.reference FROM Refs r JOIN cl ON r.referrer = cl.id
)`

// Resolve returns the closure of roots as the database records it. Every
// root must be a valid path in the database.
func (d *DB) Resolve(roots []string) (*Closure, error) {
	if len(roots) == 0 {
		return nil, errors.New("no roots given")
	}
	ctx := context.Background()
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, d.errorf("starting a read transaction: %w", err)
	}
	defer tx.Rollback()
	rootsJSON := jsonStrings(roots)
	// Check the roots first, to name the ones that are missing.
	valid := make(map[string]bool)
	rows, err := tx.QueryContext(ctx, `SELECT path FROM ValidPaths WHERE path IN (SELECT value FROM json_each(?))`, rootsJSON)
	if err != nil {
		return nil, d.errorf("querying roots: %w", err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, d.errorf("%w", err)
		}
		valid[p] = true
	}
	if err := rows.Close(); err != nil {
		return nil, d.errorf("%w", err)
	}
	for _, r := range roots {
		if !valid[r] {
			return nil, fmt.Errorf("%s is not a valid path in the Nix database %s%w", r, d.path, quiet(ErrUnknownPath))
		}
	}

	// One pass over the closure: a row per reference (NULL for a path
	// without any), the path's columns repeated.
	infos := make(map[string]*PathInfo)
	byID := make(map[int64]*PathInfo)
	type edge struct {
		from *PathInfo
		to   int64
	}
	var edges []edge
	rows, err = tx.QueryContext(ctx, closureCTE+` SELECT v.id, v.path, v.hash, v.narSize, v.deriver, r.reference
		FROM cl JOIN ValidPaths v ON v.id = cl.id LEFT JOIN Refs r ON r.referrer = cl.id`, rootsJSON)
	if err != nil {
		return nil, d.errorf("querying the closure: %w", err)
	}
	var last *PathInfo
	for rows.Next() {
		var (
			id      int64
			p, h    string
			size    sql.NullInt64
			deriver sql.NullString
			ref     sql.NullInt64
		)
		if err := rows.Scan(&id, &p, &h, &size, &deriver, &ref); err != nil {
			rows.Close()
			return nil, d.errorf("%w", err)
		}
		if info := byID[id]; info != nil {
			last = info
		} else {
			info := &PathInfo{Path: p, NarSize: uint64(size.Int64), Deriver: deriver.String}
			if size.Int64 < 0 {
				rows.Close()
				return nil, d.errorf("%s has negative NAR size %d", p, size.Int64)
			}
			if info.NarHash, err = ParseHash(h); err != nil {
				rows.Close()
				return nil, d.errorf("%s: %w", p, err)
			}
			if _, err := ParseStorePath(d.StoreDir, p); err != nil {
				rows.Close()
				return nil, d.errorf("%w", err)
			}
			infos[p] = info
			byID[id] = info
			last = info
		}
		if ref.Valid {
			edges = append(edges, edge{last, ref.Int64})
		}
	}
	if err := rows.Close(); err != nil {
		return nil, d.errorf("%w", err)
	}
	for _, e := range edges {
		t := byID[e.to]
		if t == nil {
			return nil, d.errorf("%s refers to path id %d, which is not in the closure", e.from.Path, e.to)
		}
		e.from.References = append(e.from.References, t.Path)
	}
	return newClosure(d.StoreDir, roots, infos), nil
}

func (d *DB) errorf(format string, args ...any) error {
	return fmt.Errorf("reading the Nix database %s: %w", d.path, fmt.Errorf(format, args...))
}

// jsonStrings encodes ss as a JSON array of strings.
func jsonStrings(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}
