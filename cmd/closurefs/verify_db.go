package main

import (
	"fmt"
	"io/fs"
	"path"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
)

// dbExpectation takes the closure, as the Nix database records it, of the
// store paths in the tree. Root entries the database does not know are
// extra.
func dbExpectation(fsys image.FS, target, dbPath, storeDir string) (*expectation, error) {
	db, err := closure.OpenDB(dbPath, storeDir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%s: listing the root: %w", target, err)
	}
	var roots []string
	for _, e := range ents {
		if _, err := closure.ParseBaseName(e.Name()); err == nil {
			roots = append(roots, storeDir+"/"+e.Name())
		}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%s holds no store paths", target)
	}
	exp := &expectation{source: dbPath}
	c, err := db.Resolve(roots)
	if err != nil {
		// Some root is not valid: sort them out one by one.
		var valid []string
		for _, r := range roots {
			if _, err := db.Resolve([]string{r}); err == nil {
				valid = append(valid, r)
			} else {
				exp.extra = append(exp.extra, path.Base(r))
			}
		}
		if len(valid) == 0 {
			return nil, fmt.Errorf("none of the store paths in %s is valid in %s", target, dbPath)
		}
		if c, err = db.Resolve(valid); err != nil {
			return nil, err
		}
	}
	exp.infos = c.Paths
	return exp, nil
}
