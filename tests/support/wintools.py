"""Windows tools for running launchers under wine (shared by the run.cmd tests).

Wine has no curl.exe, and its certutil.exe / powershell.exe are stubs that print nothing (run.cmd
then refuses: "no tool computed a SHA-256"). So wine gets curl.exe built for real from Debian's
curl source with mingw-w64 (cached in the test cache), and a STAND-IN sha256sum.exe (a few lines
of C; tests check it against Linux's sha256sum) in place of Git for Windows' sha256sum.exe, the
third hash tool run.cmd tries. Put :func:`windows_tools` on ``WINEPATH`` (as :func:`winpath`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SHA256_C = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
static const uint32_t K[64] = {
0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,
0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,
0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,
0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,
0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,
0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define R(x,n) (((x)>>(n))|((x)<<(32-(n))))
static uint32_t h[8]={0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19};
static void block(const unsigned char *p){uint32_t w[64],a,b,c,d,e,f,g,k,t1,t2;int i;
for(i=0;i<16;i++)w[i]=(uint32_t)p[4*i]<<24|(uint32_t)p[4*i+1]<<16|(uint32_t)p[4*i+2]<<8|p[4*i+3];
for(;i<64;i++)w[i]=w[i-16]+(R(w[i-15],7)^R(w[i-15],18)^(w[i-15]>>3))+w[i-7]+(R(w[i-2],17)^R(w[i-2],19)^(w[i-2]>>10));
a=h[0];b=h[1];c=h[2];d=h[3];e=h[4];f=h[5];g=h[6];k=h[7];
for(i=0;i<64;i++){t1=k+(R(e,6)^R(e,11)^R(e,25))+((e&f)^(~e&g))+K[i]+w[i];t2=(R(a,2)^R(a,13)^R(a,22))+((a&b)^(a&c)^(b&c));
k=g;g=f;f=e;e=d+t1;d=c;c=b;b=a;a=t1+t2;}
h[0]+=a;h[1]+=b;h[2]+=c;h[3]+=d;h[4]+=e;h[5]+=f;h[6]+=g;h[7]+=k;}
int main(int argc,char**argv){int i=1;if(argc>1&&!strcmp(argv[1],"--version")){puts("sha256sum (stand-in) 1");return 0;}
if(argc>1&&!strcmp(argv[1],"-b"))i=2;if(i>=argc)return 2;FILE*fp=fopen(argv[i],"rb");if(!fp)return 1;
unsigned char buf[64];uint64_t n=0;size_t r;while((r=fread(buf,1,64,fp))==64){block(buf);n+=64;}n+=r;fclose(fp);
unsigned char last[128]={0};memcpy(last,buf,r);last[r]=0x80;int len=(r<56)?64:128;
for(int j=0;j<8;j++)last[len-1-j]=(unsigned char)((n*8)>>(8*j));block(last);if(len==128)block(last+64);
for(int j=0;j<8;j++)printf("%08x",h[j]);printf(" *%s\n",argv[i]);return 0;}
"""


def windows_tools(cache: Path) -> Path:
    """curl.exe (real, Debian's curl source cross-built with mingw-w64) + the stand-in sha256sum.exe."""
    out = cache / "wintools"
    if (out / "curl.exe").exists() and (out / "sha256sum.exe").exists():
        return out
    for tool in ("x86_64-w64-mingw32-gcc", "apt-get", "make", "wine"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed to build curl.exe for wine")
    work = cache / "wintools-build"
    shutil.rmtree(work, ignore_errors=True)
    (work / "apt" / "lists" / "partial").mkdir(parents=True)
    (work / "apt" / "cache" / "archives" / "partial").mkdir(parents=True)
    (work / "apt" / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
    (work / "apt" / "apt.conf").write_text(
        f'Dir::Etc::SourceList "{work}/apt/sources.list";\nDir::Etc::SourceParts "/nonexistent";\n'
        f'Dir::State::Lists "{work}/apt/lists";\nDir::Cache "{work}/apt/cache";\n'
    )
    env = dict(os.environ, APT_CONFIG=str(work / "apt" / "apt.conf"))
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True, timeout=600)
    src = work / "src"
    src.mkdir()
    subprocess.run(["apt-get", "source", "--download-only", "-q", "curl"], env=env, cwd=src, check=True, capture_output=True, timeout=600)
    orig = next(src.glob("curl_*.orig.tar.*"))
    subprocess.run(["tar", "xf", orig.name], cwd=src, check=True)
    tree = next(p for p in src.iterdir() if p.is_dir())
    configure = [
        "./configure", "--host=x86_64-w64-mingw32", "--with-schannel", "--disable-shared", "--enable-static",
        "--without-libpsl", "--without-zlib", "--without-brotli", "--without-zstd", "--without-nghttp2", "--without-libidn2",
        "--disable-ldap", "--disable-ldaps", "--disable-rtsp", "--disable-dict", "--disable-telnet", "--disable-tftp",
        "--disable-pop3", "--disable-imap", "--disable-smb", "--disable-smtp", "--disable-gopher", "--disable-mqtt",
        "--disable-manual", "--disable-docs", "LDFLAGS=-static",
    ]
    subprocess.run(configure, cwd=tree, check=True, capture_output=True, timeout=900)
    subprocess.run(["make", "-j2", "-C", "lib"], cwd=tree, check=True, capture_output=True, timeout=1800)
    subprocess.run(["make", "-j2", "-C", "src"], cwd=tree, check=True, capture_output=True, timeout=1800)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tree / "src" / "curl.exe", out / "curl.exe")
    pthread = next(Path("/usr").rglob("x86_64-w64-mingw32/lib/libwinpthread-1.dll"), None)
    if pthread is not None:
        shutil.copyfile(pthread, out / "libwinpthread-1.dll")
    (work / "sha256.c").write_text(SHA256_C)
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(out / "sha256sum.exe"), str(work / "sha256.c")], check=True)
    shutil.rmtree(work, ignore_errors=True)
    return out


def winpath(p: Path) -> str:
    return "Z:" + str(p).replace("/", "\\")


__all__ = ["SHA256_C", "windows_tools", "winpath"]
