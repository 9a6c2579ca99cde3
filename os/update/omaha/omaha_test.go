package omaha

import (
	"encoding/xml"
	"testing"
)

// A response in the shape Container Linux's servers send: SHA-1 on the
// package, SHA-256 on the postinstall action.
const coreUpdateResponse = `<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="update.example">
 <daystart elapsed_seconds="0"></daystart>
 <app appid="{8d7b3b7e-52a4-4c1d-9e0b-6f3b0a1c2e55}" status="ok">
  <updatecheck status="ok">
   <urls><url codebase="https://updates.example/amd64-usr/1.2.0"></url></urls>
   <manifest version="1.2.0">
    <packages><package hash="2jmj7l5rSw0yVb/vlWAYkK/YBwk=" name="update.payload" size="1234" required="false"></package></packages>
    <actions><action event="postinstall" sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" DisablePayloadBackoff="true"></action></actions>
   </manifest>
  </updatecheck>
  <ping status="ok"></ping>
 </app>
</response>`

func TestOfferFromACoreUpdateStyleResponse(t *testing.T) {
	var r Response
	if err := xml.Unmarshal([]byte(coreUpdateResponse), &r); err != nil {
		t.Fatal(err)
	}
	app, err := r.App("{8D7B3B7E-52A4-4C1D-9E0B-6F3B0A1C2E55}")
	if err != nil {
		t.Fatal(err)
	}
	o, err := app.UpdateCheck.Offer()
	if err != nil {
		t.Fatal(err)
	}
	if o.Version != "1.2.0" || o.URL != "https://updates.example/amd64-usr/1.2.0/update.payload" || o.Size != 1234 || len(o.SHA256) != 32 || o.SHA256[0] != 0xe3 {
		t.Errorf("offer %+v", o)
	}
}

func TestOfferWithoutSHA256IsRefused(t *testing.T) {
	u := &UpdateResponse{Status: StatusOK, URLs: &URLs{URLs: []URL{{CodeBase: "http://x/"}}},
		Manifest: &Manifest{Version: "2", Packages: Packages{Packages: []Package{{Name: "p", Size: 1}}}}}
	if _, err := u.Offer(); err == nil {
		t.Error("offer without a SHA-256 accepted")
	}
	if o, err := (&UpdateResponse{Status: StatusNoUpdate}).Offer(); o != nil || err != nil {
		t.Errorf("noupdate: %v %v", o, err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.10.0", "1.9.3", 1}, {"1.2.0", "1.2.0", 0}, {"1.2", "1.2.1", -1}, {"3374.2.0", "3510.0.0", -1}, {"1.0.0-rc1", "1.0.0-rc2", -1}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d", c.a, c.b, got)
		}
	}
}
