package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/pkg/webhook"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage request signing keys"}
	var out, kid string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new ES256 (P-256) private key as PEM and print its public JWK",
		Long: `generate writes a new P-256 private key (PKCS #8 PEM, mode 0600) for signing webhook requests,
and prints the public key as a JWK to add to the signing_keys of the merchant's /.well-known/ucp.
Configure the key with partners.<id>.signing.key_file and the same key_id.`,
		Example: `  ucprelay keys generate --out /etc/ucprelay/signing-2026-11.pem --kid shop-2026-11`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || kid == "" {
				return errors.New("keys generate: --out and --kid are required")
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return fmt.Errorf("keys generate: %w", err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(key)
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
			jwk, err := webhook.PublicJWKOf(&key.PublicKey, kid)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(jwk)
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to write the private key to (must not exist)")
	gen.Flags().StringVar(&kid, "kid", "", "key id, as published in signing_keys and configured as signing.key_id")
	cmd.AddCommand(gen)
	return cmd
}
