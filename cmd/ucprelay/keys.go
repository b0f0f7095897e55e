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
	"os"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage request signing keys"}
	var out, kid, alg string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new signing key (ES256 or EdDSA) as PEM and print its public JWK",
		Long: `generate writes a new private key (PKCS #8 PEM, mode 0600) for signing webhook requests:
P-256 for ES256 (the default, every UCP version), Ed25519 for --alg EdDSA (2026-04-08 only).
It prints the public key as a JWK to add to the merchant's /.well-known/ucp (signing_keys,
or a keys JWK Set). Configure the key with partners.<id>.signing.key_file, the same key_id,
and signing.alg for EdDSA.`,
		Example: `  ucprelay keys generate --out /etc/ucprelay/signing-2026-11.pem --kid shop-2026-11
  ucprelay keys generate --alg EdDSA --out /etc/ucprelay/signing-ed-2026-12.pem --kid shop-ed-2026-12`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || kid == "" {
				return errors.New("keys generate: --out and --kid are required")
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
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(jwk)
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to write the private key to (must not exist)")
	gen.Flags().StringVar(&kid, "kid", "", "key id, as published in signing_keys and configured as signing.key_id")
	gen.Flags().StringVar(&alg, "alg", config.AlgES256, "ES256 (P-256) or EdDSA (Ed25519, for 2026-04-08 partners)")
	cmd.AddCommand(gen)
	return cmd
}
