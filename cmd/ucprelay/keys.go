package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage request signing keys"}
	var out, kid, alg, format string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new signing key (ES256 or EdDSA) as PEM and print its public JWK",
		Long: `generate writes a new private key (PKCS #8 PEM, mode 0600) for signing webhook requests:
P-256 for ES256 (the default, every UCP version), Ed25519 for --alg EdDSA (2026-04-08 only).
It prints the public key to add to the merchant's /.well-known/ucp: as a JWK (--format jwk,
the default), or as a profile fragment, {"keys": [...]} (--format keys, newer profiles'
JWK Set) or {"signing_keys": [...]} (--format signing_keys, 2026-01-xx and 2026-04-08
profiles). Configure the key with partners.<id>.signing (key_file and key_id, or an entry
of signing.keys during a rotation), and alg EdDSA for Ed25519. ` + "`ucprelay keys profile`" + `
prints every configured key at once, the old and the new during a rotation.`,
		Example: `  ucprelay keys generate --out /etc/ucprelay/signing-2026-11.pem --kid shop-2026-11
  ucprelay keys generate --alg EdDSA --out /etc/ucprelay/signing-ed-2026-12.pem --kid shop-ed-2026-12
  ucprelay keys generate --out /etc/ucprelay/signing-2027-02.pem --kid shop-2027-02 --format signing_keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || kid == "" {
				return errors.New("keys generate: --out and --kid are required")
			}
			if err := checkFormat(format); err != nil {
				return fmt.Errorf("keys generate: %w", err)
			}
			var (
				priv any
				jwk  webhook.PublicJWK
				err  error
			)
			switch alg {
			case config.AlgES256:
				key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if gerr != nil {
					return fmt.Errorf("keys generate: %w", gerr)
				}
				priv = key
				jwk, err = webhook.PublicJWKOf(&key.PublicKey, kid)
			case config.AlgEdDSA:
				pub, key, gerr := ed25519.GenerateKey(rand.Reader)
				if gerr != nil {
					return fmt.Errorf("keys generate: %w", gerr)
				}
				priv = key
				jwk, err = webhook.PublicJWKOfEd25519(pub, kid)
			default:
				return fmt.Errorf("keys generate: --alg %q: want ES256 or EdDSA", alg)
			}
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return fmt.Errorf("keys generate: %w", err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keys generate: %w (refusing to overwrite a key)", err)
			}
			if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
				_ = f.Close()
				return fmt.Errorf("keys generate: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("keys generate: %w", err)
			}
			return printKeys(cmd.OutOrStdout(), format, []webhook.PublicJWK{jwk})
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to write the private key to (must not exist)")
	gen.Flags().StringVar(&kid, "kid", "", "key id, as published in signing_keys and configured as signing.key_id")
	gen.Flags().StringVar(&alg, "alg", config.AlgES256, "ES256 (P-256) or EdDSA (Ed25519, for 2026-04-08 partners)")
	gen.Flags().StringVar(&format, "format", formatJWK, "jwk, keys ({\"keys\": [...]}) or signing_keys ({\"signing_keys\": [...]})")
	cmd.AddCommand(gen, a.keysProfileCmd())
	return cmd
}

// The forms keys generate and keys profile print public keys in.
const (
	formatJWK         = "jwk"
	formatKeys        = "keys"
	formatSigningKeys = "signing_keys"
)

func checkFormat(f string) error {
	switch f {
	case formatJWK, formatKeys, formatSigningKeys:
		return nil
	}
	return fmt.Errorf("--format %q: want jwk, keys or signing_keys", f)
}

// printKeys writes public keys in format: one JWK (jwk, for a single key), or a profile
// fragment whose member holds them all.
func printKeys(w io.Writer, format string, jwks []webhook.PublicJWK) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	switch format {
	case formatJWK:
		if len(jwks) != 1 {
			return fmt.Errorf("--format jwk prints one key; %d are configured: use keys or signing_keys", len(jwks))
		}
		return enc.Encode(jwks[0])
	default:
		return enc.Encode(map[string][]webhook.PublicJWK{format: jwks})
	}
}

func (a *app) keysProfileCmd() *cobra.Command {
	var partnerID, format string
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Print the public keys of the configured signing keys as a UCP profile fragment",
		Long: `profile reads every signing key the configuration lists (signing.key_file, or each of
signing.keys during a rotation) and prints their public keys as the merchant's
/.well-known/ucp publishes them: {"signing_keys": [...]} (the default) or {"keys": [...]}
(--format keys). Keys that several partners share are printed once. Publish the output
before a new key signs, and keep an old key published for as long as a retry signed with
it may still arrive (at least delivery.max_retry_time; UCP asks for 7 days).`,
		Example: `  ucprelay keys profile --config relay.yaml
  ucprelay keys profile --config relay.yaml --partner google --format keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return fmt.Errorf("keys profile: %w", err)
			}
			s, err := a.loadConfig(a.configFile, cmd.Flags(), false)
			if err != nil {
				return err
			}
			ids := s.PartnerIDs()
			if partnerID != "" {
				if _, ok := s.Partners[partnerID]; !ok {
					return fmt.Errorf("keys profile: --partner %q is not configured (partners: %v)", partnerID, ids)
				}
				ids = []string{partnerID}
			}
			var jwks []webhook.PublicJWK
			byKid := map[string]webhook.PublicJWK{}
			for _, id := range ids {
				keys, err := loadSigningKeys("partners."+id+".signing", s.Partners[id].Signing)
				if err != nil {
					return err
				}
				for _, k := range keys {
					pub, err := k.public()
					if err != nil {
						return fmt.Errorf("keys profile: partners.%s kid %s: %w", id, k.KeyID, err)
					}
					if was, ok := byKid[k.KeyID]; ok {
						if was != pub {
							return fmt.Errorf("keys profile: kid %s names two different keys (partners.%s and another partner)", k.KeyID, id)
						}
						continue
					}
					byKid[k.KeyID] = pub
					jwks = append(jwks, pub)
				}
			}
			if len(jwks) == 0 {
				return errors.New("keys profile: no partner signs (set partners.<id>.signing)")
			}
			return printKeys(cmd.OutOrStdout(), format, jwks)
		},
	}
	cmd.Flags().StringVar(&partnerID, "partner", "", "only this partner's keys (default: every partner's)")
	cmd.Flags().StringVar(&format, "format", formatSigningKeys, "signing_keys or keys (or jwk for a single key)")
	a.configFlags(cmd, toolKeys)
	return cmd
}
