package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/os/update"
	"github.com/orbit-pods/orbit/os/update/omaha"
	"github.com/orbit-pods/orbit/os/update/payload"
)

func payloadCmd() *cobra.Command {
	c := &cobra.Command{Use: "payload", Short: "Make signing keys and signed update payloads"}
	c.AddCommand(keygenCmd(), buildCmd(), verifyCmd())
	return c
}

func keygenCmd() *cobra.Command {
	var priv, pub string
	c := &cobra.Command{
		Use:   "keygen --private FILE --public FILE",
		Short: "Make an Ed25519 signing key pair (PEM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if priv == "" || pub == "" {
				return fmt.Errorf("need --private and --public")
			}
			sk, pk, err := payload.GenerateKey()
			if err != nil {
				return err
			}
			// O_EXCL: never overwrite a signing key.
			f, err := os.OpenFile(priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("write private key: %w", err)
			}
			if _, err := f.Write(sk); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.WriteFile(pub, pk, 0o644)
		},
	}
	c.Flags().StringVar(&priv, "private", "", "private key file to create (keep it off the machines)")
	c.Flags().StringVar(&pub, "public", "", "public key file to create (goes in /usr/share/orbit/update-keys/)")
	return c
}

func buildCmd() *cobra.Command {
	var usr, kernel, initrd, slotcfg, fromDisk, version, key, out string
	var compress bool
	c := &cobra.Command{
		Use:   "build (--from-disk OS.raw | --usr IMG --kernel VMLINUZ [--initrd IMG] [--slot-cfg F]) --version V --key KEY -o FILE",
		Short: "Build and sign a payload from `make os-image` output; writes FILE and FILE.sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (fromDisk == "") == (usr == "" || kernel == "") || version == "" || key == "" || out == "" {
				return fmt.Errorf("need --from-disk or --usr and --kernel, and --version, --key and -o")
			}
			kb, err := os.ReadFile(key)
			if err != nil {
				return fmt.Errorf("read signing key: %w", err)
			}
			sk, err := payload.ParsePrivateKey(kb)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", key, err)
			}
			in := []payload.Input{{Role: payload.RoleUsr, Path: usr}, {Role: payload.RoleKernel, Path: kernel}}
			if initrd != "" {
				in = append(in, payload.Input{Role: payload.RoleInitrd, Path: initrd})
			}
			if slotcfg != "" {
				in = append(in, payload.Input{Role: payload.RoleSlotCfg, Path: slotcfg})
			}
			if fromDisk != "" {
				tmpDir, err := os.MkdirTemp(filepath.Dir(out), ".orbit-payload-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmpDir)
				if in, err = inputsFromDisk(fromDisk, tmpDir); err != nil {
					return err
				}
			}
			tmp := out + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			h := sha256.New()
			var w io.Writer = io.MultiWriter(f, h)
			var zw *gzip.Writer
			if compress {
				zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
				w = zw
			}
			m, err := payload.Build(w, version, in, sk)
			if err == nil && zw != nil {
				err = zw.Close()
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("build payload: %w", err)
			}
			sum := hex.EncodeToString(h.Sum(nil))
			if err := os.WriteFile(out+".sha256", []byte(sum+"  "+filepath.Base(out)+"\n"), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: version %s, %d files, sha256 %s\n", out, m.Version, len(m.Files), sum)
			return nil
		},
	}
	c.Flags().StringVar(&usr, "usr", "", "the /usr filesystem image")
	c.Flags().StringVar(&kernel, "kernel", "", "the kernel")
	c.Flags().StringVar(&initrd, "initrd", "", "the initramfs")
	c.Flags().StringVar(&slotcfg, "slot-cfg", "", "the loader's per-slot configuration (slot.cfg: the dm-verity root hash)")
	c.Flags().StringVar(&fromDisk, "from-disk", "", "take /usr, kernel, initramfs and slot.cfg from slot A of this OS disk image")
	c.Flags().BoolVar(&compress, "gzip", true, "gzip the payload")
	c.Flags().StringVar(&version, "version", "", "the OS version the payload installs (its VERSION_ID)")
	c.Flags().StringVar(&key, "key", "", "the Ed25519 private key (PEM) to sign with")
	c.Flags().StringVarP(&out, "output", "o", "", "payload file to write")
	return c
}

func verifyCmd() *cobra.Command {
	var keys string
	c := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a payload's signature and every file's digest, writing nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := payload.LoadPublicKeys(keys)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := payload.Verify(f, ks)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good payload for version %s\n", args[0], m.Version)
			for _, fl := range m.Files {
				fmt.Fprintf(cmd.OutOrStdout(), "  %-7s %-12s %12d %s\n", fl.Role, fl.Name, fl.Size, fl.SHA256)
			}
			return nil
		},
	}
	c.Flags().StringVar(&keys, "keys", update.KeysDir, "directory of trusted keys (*.pem)")
	return c
}

func serveCmd() *cobra.Command {
	var dir, listen, events, appID string
	c := &cobra.Command{
		Use:   "serve --dir DIR [--listen ADDR]",
		Short: "Serve payloads in DIR/CHANNEL/*.payload to Omaha clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("need --dir")
			}
			s := &omaha.Server{AppID: appID, Catalog: omaha.DirCatalog(dir, peekVersion)}
			if events != "" {
				f, err := os.OpenFile(events, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				s.EventLog = f
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			// The address on stdout lets a caller that asked for port 0 find it.
			fmt.Fprintf(cmd.OutOrStdout(), "listening on http://%s/\n", ln.Addr())
			log.Printf("orbit-update serve: payloads from %s", dir)
			ctx, cancel := signalContext()
			defer cancel()
			srv := &http.Server{Handler: s}
			go func() { <-ctx.Done(); srv.Close() }()
			if err := srv.Serve(ln); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory with a subdirectory of payloads per channel")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8470", "address to listen on")
	c.Flags().StringVar(&events, "events", "", "append reported events to this file as JSON lines")
	c.Flags().StringVar(&appID, "appid", update.DefaultAppID, "Omaha application id served")
	return c
}

func peekVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	m, err := payload.PeekManifest(f)
	if err != nil {
		return "", err
	}
	return m.Version, nil
}
