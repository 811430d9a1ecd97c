package main

import (
	"fmt"

	"github.com/closurefs/closurefs/image"
)

// dbExpectation takes, from the Nix database, the closure of the store paths
// in the tree. It needs the closure package's database reader, which is not
// merged yet.
func dbExpectation(fsys image.FS, target, dbPath, storeDir string) (*expectation, error) {
	return nil, fmt.Errorf("--db %s: reading the Nix database is not built in yet; use --registration", dbPath)
}

// defaultDBPath is where Nix keeps its database by default.
const defaultDBPath = "/nix/var/nix/db/db.sqlite"
