package main

import (
	"flag"
	"testing"
)

func TestFlagsFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	ep := fs.String("etcd-endpoints", "http://127.0.0.1:2379", "")
	masq := fs.Bool("ip-masq", false, "")
	iface := fs.String("iface", "", "")
	if err := fs.Parse([]string{"-iface=eth1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLANNELD_ETCD_ENDPOINTS", "http://10.0.0.1:2379")
	t.Setenv("FLANNELD_IP_MASQ", "true")
	t.Setenv("FLANNELD_IFACE", "eth9") // the command line wins
	if err := flagsFromEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *ep != "http://10.0.0.1:2379" || !*masq || *iface != "eth1" {
		t.Fatalf("endpoints %q, ip-masq %v, iface %q", *ep, *masq, *iface)
	}
	t.Setenv("FLANNELD_IP_MASQ", "maybe")
	if err := flagsFromEnv(fs); err == nil {
		t.Fatal("a bad boolean was taken")
	}
}
