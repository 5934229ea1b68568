# Regenerates go_fields.txt from the Go sources of k8s.io/api, apimachinery, apiextensions-apiserver,
# kube-aggregator and metrics (at the tag k8s-pb was generated from) unpacked under SRC.
# Run it by hand after a k8s-pb bump; `cargo test -p rkube-protobuf` then checks the result.
import os, re, glob, json
SRC=os.environ.get('GO_SRC', '/tmp/gox/src')
PB=glob.glob(os.path.expanduser('~/.cargo/registry/src/*/k8s-pb-0.9.0/src'))[0]
field_re = re.compile(r'^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`')
structs = {}
for root, dirs, files in os.walk(SRC):
    for f in sorted(files):
        if not f.endswith('.go') or f.endswith('_test.go') or f.startswith('zz_') or f.endswith('.pb.go'):
            continue
        rel = os.path.relpath(root, SRC).replace('/', '.').replace('-', '_')
        cur = None
        for line in open(os.path.join(root, f)):
            m = re.match(r'^type (\w+) struct \{', line)
            if m:
                cur = []; structs.setdefault((rel + '.' + m.group(1)).lower(), cur); continue
            if cur is not None and line.startswith('}'):
                cur = None; continue
            if cur is None or line.lstrip().startswith('//'): continue
            m = field_re.match(line)
            if not m: continue
            name, ty, tag = m.groups()
            jm = re.search(r'json:"([^"]*)"', tag)
            pm = re.search(r'protobuf:"[^,]*,(\d+),', tag)
            if not pm: continue
            j = jm.group(1).split(',') if jm else ['']
            cur.append(dict(name=name or ty.split('.')[-1].lstrip('*'), ty=ty, json=j[0], opts=j[1:], tag=int(pm.group(1)), embedded=name is None))
# `type MatchCondition v1.MatchCondition`: a defined type with another struct's fields.
for root, dirs, files in os.walk(SRC):
    for f in sorted(files):
        if not f.endswith('.go') or f.endswith('_test.go'): continue
        rel = os.path.relpath(root, SRC).replace('/', '.').replace('-', '_')
        text = open(os.path.join(root, f)).read()
        for m in re.finditer(r'^type (\w+) (\w+)\.(\w+)$', text, re.M):
            im = re.search(r'^\s*' + m.group(2) + r' "k8s\.io/api/([^"]+)"', text, re.M)
            if not im: continue
            target = ('api.' + im.group(1).replace('/', '.') + '.' + m.group(3)).lower()
            if target in structs:
                structs.setdefault((rel + '.' + m.group(1)).lower(), structs[target])
                print('alias', rel, m.group(1), '->', target)
pbmsgs = {}
for root, dirs, files in os.walk(PB):
    if 'mod.rs' not in files: continue
    rel = os.path.relpath(root, PB).replace('/', '.')
    lines = open(os.path.join(root, 'mod.rs')).read().splitlines()
    cur = None
    for i, l in enumerate(lines):
        t = l.strip()
        m = re.match(r'pub struct (\w+)', t)
        if m:
            cur = []; pbmsgs[(rel + '.' + m.group(1)).lower()] = (rel + '.' + m.group(1), cur); continue
        if t.startswith('#[prost(') and cur is not None:
            kind = re.split(r'[ ,=]', t[len('#[prost('):])[0]
            tag = int(re.search(r'tag = "(\d+)"', t).group(1))
            card = 'repeated' if 'repeated' in t else ('map' if kind.endswith('map') else 'single')
            j = i + 1
            while not lines[j].strip().startswith('pub '): j += 1
            rust = lines[j].strip()[4:].split(':')[0].replace('r#', '')
            cur.append((kind, card, tag, rust))
SCALAR = {'string','bytes','bool','int32','int64','double'}
norm = lambda s: s.replace('_','').lower()
rows = []
for key, (path, pbf) in sorted(pbmsgs.items(), key=lambda kv: kv[0]):
    go = structs.get(key)
    if go is None: continue
    bytag = {g['tag']: g for g in go}
    entries = []
    for kind, card, tag, rust in sorted(pbf, key=lambda f: [g['tag'] for g in go].index(f[2]) if f[2] in bytag else 999):
        g = bytag.get(tag)
        if g is None: print('no go field', path, tag); continue
        if g['embedded'] and g['json'] == '' and 'inline' in g['opts']:
            assert kind == 'message', (path, g)
            camel = re.sub(r'_(\w)', lambda m: m.group(1).upper(), rust)
            entries.append('^' + camel); continue
        if g['json'] in ('', '-'): continue
        if not (kind in SCALAR and card == 'single'):
            camel = re.sub(r'_(\w)', lambda m: m.group(1).upper(), rust)
            if camel != g['json']: entries.append('@' + g['json'])
            continue
        if True:
            if norm(g['json']) != norm(rust): print('name mismatch', path, g['json'], rust)
            omit = 'omitempty' in g['opts'] or 'omitzero' in g['opts']
            mark = '*' if g['ty'].startswith('*') else ('-' if omit else '=')
            entries.append(mark + g['json'])
    if entries: rows.append(path + ' ' + ' '.join(entries))
open('/tmp/gox/go_fields.body', 'w').write('\n'.join(rows) + '\n')
print(len(rows), sum(len(r.split()) - 1 for r in rows))
