// Package docs holds the project's documentation and no code: its test keeps the file
// map of DESIGN.md naming every source file, so the map cannot fall behind the code.
package docs
