// Package importer turns what a user already has into Groups and Machines: the manifests of the
// project this one replaces (infra.homecluster.dev/v1alpha1 Group and Node objects) and a plain
// inventory of machines (CSV or YAML). It only reads its input and builds objects; it never talks
// to a cluster. homelabctl import is its command line, docs/import.md its manual.
//
// An import either converts every object or converts none: Upstream and Inventory collect every
// problem of the input into one *Error, and return no objects then, so that a user never applies
// half of an inventory by mistake.
package importer
