#!/usr/bin/env python3
"""win_policy: the Group Policy templates and the agent agree, and policy values take effect.

Usage: win_policy.py WINE AGENT_EXE ADMX ADML

1. The ADMX and ADML are well-formed XML; every $(string.X) and $(presentation.X) the ADMX uses
   exists in the ADML, every element has its presentation control, every policy sits in the
   epwatch category, is supported on Windows 7+ and writes under HKLM\\Software\\Policies\\epwatch\\Agent.
2. The valueNames of the ADMX equal the values the agent reads (`epwatch-agent --list-policies`),
   with matching registry types (text: REG_SZ, decimal: REG_DWORD, enum of strings: REG_SZ).
3. Under Wine, every policy of the ADMX is written with `reg add` and `--print-config` shows each
   one in effect, over a config file that sets the same keys differently; the command line still
   wins; a value of the wrong type is refused with its name. The policy key is removed at the end.
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

NS = {"p": "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions"}
KEY = "Software\\Policies\\epwatch\\Agent"
REG_KEY = "HKLM\\" + KEY

# A test value per policy: (reg type, data, config key, expected value in --print-config).
# A policy in the ADMX without an entry here fails the test: add one when adding a policy.
VALUES = {
    "Collector": ("REG_SZ", "gpo-collector.example:7443", "collector", "gpo-collector.example:7443"),
    "ServerName": ("REG_SZ", "gpo-name.example", "server_name", "gpo-name.example"),
    "Interval": ("REG_DWORD", "45", "interval", "45s"),
    "CaFile": ("REG_EXPAND_SZ", "%SystemDrive%\\gpo\\ca.crt", "ca", "C:\\gpo\\ca.crt"),
    "CertFile": ("REG_SZ", "C:\\gpo\\host.crt", "cert", "C:\\gpo\\host.crt"),
    "KeyFile": ("REG_SZ", "C:\\gpo\\host.key", "key", "C:\\gpo\\host.key"),
    "SpoolDir": ("REG_SZ", "D:\\gpo-spool", "spool_dir", "D:\\gpo-spool"),
    "SpoolMax": ("REG_DWORD", "128", "spool_max", "128M"),
    "LogLevel": ("REG_SZ", "debug", "log_level", "debug"),
}

# The config file sets every key to something else, so each policy visibly overrides it.
FILE_INI = """collector = file-collector:1
server_name = file-name
interval = 10s
ca = C:\\file\\ca.crt
cert = C:\\file\\host.crt
key = C:\\file\\host.key
spool_dir = C:\\file\\spool
spool_max = 2M
log_level = warn
"""

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def parse_templates(admx_path, adml_path):
    admx = ET.parse(admx_path).getroot()  # raises on malformed XML
    adml = ET.parse(adml_path).getroot()
    strings = {s.get("id") for s in adml.iterfind(".//p:stringTable/p:string", NS)}
    presentations = {}
    for pres in adml.iterfind(".//p:presentationTable/p:presentation", NS):
        presentations[pres.get("id")] = {c.get("refId") for c in pres}
    cats = {c.get("name") for c in admx.iterfind(".//p:categories/p:category", NS)}
    check("epwatch" in cats, "no category 'epwatch'")

    def ref(text, kind):
        prefix = "$(%s." % kind
        if not (text and text.startswith(prefix) and text.endswith(")")):
            return None
        return text[len(prefix):-1]

    for c in admx.iterfind(".//p:categories/p:category", NS):
        for attr in ("displayName", "explainText"):
            check(ref(c.get(attr), "string") in strings, "category %s: %s" % (c.get("name"), attr))

    policies = {}
    for pol in admx.iterfind(".//p:policies/p:policy", NS):
        name = pol.get("name")
        check(pol.get("key") == KEY, "%s: key %r" % (name, pol.get("key")))
        check(pol.get("class") == "Machine", "%s: class %r" % (name, pol.get("class")))
        for attr in ("displayName", "explainText"):
            check(ref(pol.get(attr), "string") in strings, "%s: %s not in the ADML" % (name, attr))
        pres = ref(pol.get("presentation"), "presentation")
        check(pres in presentations, "%s: presentation %r not in the ADML" % (name, pres))
        parent = pol.find("p:parentCategory", NS)
        check(parent is not None and parent.get("ref") == "epwatch", "%s: not in epwatch" % name)
        sup = pol.find("p:supportedOn", NS)
        check(sup is not None and sup.get("ref") == "windows:SUPPORTED_Windows7",
              "%s: supportedOn" % name)
        elements = pol.find("p:elements", NS)
        check(elements is not None and len(elements) > 0, "%s: no elements" % name)
        for el in list(elements) if elements is not None else []:
            tag = el.tag.split("}")[1]
            vn = el.get("valueName")
            check(vn is not None, "%s: element without valueName" % name)
            check(el.get("id") in presentations.get(pres, set()),
                  "%s: element %s has no presentation control" % (name, el.get("id")))
            if tag == "text":
                rtype = "REG_SZ"
            elif tag == "decimal":
                rtype = "REG_DWORD"
            elif tag == "enum":
                items = el.findall("p:item", NS)
                check(items and all(i.find("p:value/p:string", NS) is not None for i in items),
                      "%s: enum items must be strings" % name)
                for i in items:
                    check(ref(i.get("displayName"), "string") in strings,
                          "%s: enum item text not in the ADML" % name)
                rtype = "REG_SZ"
            else:
                check(False, "%s: unexpected element %s" % (name, tag))
                continue
            check(vn not in policies, "%s: valueName %s twice" % (name, vn))
            policies[vn] = rtype
    return policies


def run(wine, args, **kw):
    return subprocess.run([wine] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60, **kw)


def config_of(text):
    conf = {}
    for line in text.replace("\r", "").splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            conf[k.strip()] = v.strip()
    return conf


def main():
    wine, agent, admx_path, adml_path = sys.argv[1:5]
    policies = parse_templates(admx_path, adml_path)
    print("ADMX policies:", ", ".join(sorted(policies)))

    out = run(wine, [agent, "--list-policies"])
    check(out.returncode == 0, "--list-policies exited with %d" % out.returncode)
    read = {}
    for line in out.stdout.replace("\r", "").splitlines():
        name, rtype, _key = line.split()
        read[name] = rtype
    check(set(read) == set(policies),
          "ADMX valueNames %s != values the agent reads %s" % (sorted(policies), sorted(read)))
    for vn, rtype in policies.items():
        if vn in read:
            check(read[vn] == rtype, "%s: ADMX writes %s, the agent reads %s" % (vn, rtype, read[vn]))
    missing = set(policies) - set(VALUES)
    check(not missing, "no test value for %s" % sorted(missing))

    run(wine, ["reg", "delete", REG_KEY, "/f"])
    with tempfile.TemporaryDirectory() as tmp:
        ini = os.path.join(tmp, "agent.ini")
        with open(ini, "w") as f:
            f.write(FILE_INI)
        win_ini = "Z:" + ini.replace("/", "\\")
        try:
            base = config_of(run(wine, [agent, "--config", win_ini, "--print-config"]).stdout)
            for vn in policies:
                if vn not in VALUES:
                    continue
                rtype, data, key, want = VALUES[vn]
                check(base.get(key) != want, "%s: the file already gives %s" % (vn, want))
                r = run(wine, ["reg", "add", REG_KEY, "/v", vn, "/t", rtype, "/d", data, "/f"])
                check(r.returncode == 0, "reg add %s failed: %s" % (vn, r.stderr))
            r = run(wine, [agent, "--config", win_ini, "--print-config"])
            check(r.returncode == 0, "--print-config with policies exited %d: %s"
                  % (r.returncode, r.stderr))
            conf = config_of(r.stdout)
            for vn in policies:
                if vn in VALUES:
                    _t, _d, key, want = VALUES[vn]
                    check(conf.get(key) == want, "policy %s: %s = %r, expected %r"
                          % (vn, key, conf.get(key), want))
            print("ok: %d policies in effect over the config file" % len(policies))

            r = run(wine, [agent, "--config", win_ini, "--interval", "20s", "--print-config"])
            check(config_of(r.stdout).get("interval") == "20s", "the command line must win")

            run(wine, ["reg", "add", REG_KEY, "/v", "Interval", "/t", "REG_SZ", "/d", "x", "/f"])
            r = run(wine, [agent, "--config", win_ini, "--print-config"])
            check(r.returncode == 2 and "'Interval'" in r.stderr,
                  "a REG_SZ Interval must be refused by name (exit %d: %s)"
                  % (r.returncode, r.stderr.strip()))
        finally:
            run(wine, ["reg", "delete", REG_KEY, "/f"])
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok: templates and agent agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
