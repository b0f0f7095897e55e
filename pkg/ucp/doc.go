// Package ucp is the UCP (Universal Commerce Protocol) order entity for the protocol
// versions ucprelay supports, 2026-01-11 (also accepted as 2026-01-01), 2026-01-23 and
// 2026-04-08, and its JSON for each of them.
//
// [Order] is one version-agnostic model holding every field any version has. Money is in
// the 2026-04-08 convention: signed integer minor units, discounts negative, money given
// back in an adjustment's negative `total`. Line status is not stored: [Marshal] derives
// it by the literal rule of the target version ([LineStatusOf]). The package uses the
// standard library only.
package ucp
