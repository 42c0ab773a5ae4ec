@echo off
rem {{ artifact }}: start llama-server with this folder's defaults (llama-server.args) and a model.
rem
rem   run.cmd                     the default model ({{ model_label }}): downloaded into the model
rem                               store on the first run (verified: size + SHA-256), then served
rem   run.cmd -m FILE [ARGS...]   a GGUF model file; any other llama-server arguments may follow
rem   set LOCARA_MODEL=FILE       the same, from the environment
rem
rem Launcher options come FIRST (then at most 9 server arguments may follow them):
rem   --no-download   never download (also LOCARA_OFFLINE=1)
rem   --no-browser    do not open a browser (also LOCARA_NO_BROWSER=1)
rem   --https         serve over TLS: certs\server.crt + certs\server.key beside this file, else a
rem                   local CA made once with openssl.exe (when on PATH) beside the model store
rem
rem Arguments given here win over llama-server.args (host {{ host }}, port {{ port }}, the UI in ui\).
rem Model store: %LOCARA_MODEL_STORE%, else %LOCARA_WORK_DIR%\models, else
rem %LOCALAPPDATA%\locara-build\Cache\models (where `locara-build models fetch` puts models).
rem Downloads: curl.exe (Windows 10 1803+), else PowerShell. SHA-256: certutil, else PowerShell
rem Get-FileHash, else sha256sum.exe (Git for Windows). Exit codes: 2 usage / missing files / disk
rem space, 8 verification failed, 9 download failed. Double-clicked, the window stays open at the end.
rem Every value below comes from the model manifest, checked against strict patterns when the
rem package was made, and is used only inside double quotes (delayed expansion off).
setlocal EnableExtensions DisableDelayedExpansion
if "%~1"==":wait_then_open" goto wait_then_open
set "HERE=%~dp0"
set "SELF=%~f0"
set "SERVER=%HERE%bin\llama-server.exe"
set "DEFAULT_ID={{ model_id|cmd }}"
set "DEFAULT_SHA256={{ model_sha256|cmd }}"
set "DEFAULT_FILE={{ model_file|cmd }}"
set "DEFAULT_SIZE={{ model_size|cmd }}"
set "DEFAULT_LICENSE={{ model_license|cmd }}"
set "DEFAULT_URL={{ model_url|cmd }}"
set "PORT={{ port|cmd }}"
set "URL_HOST={{ host|cmd }}"
set "RC=0"

rem Started by a double-click (Explorer runs: cmd.exe /c ""C:\...\run.cmd" ")? Then keep the
rem window open at the end, so the URL and any error stay readable.
set "DBL="
setlocal EnableDelayedExpansion
set "CCL=!cmdcmdline!"
if defined CCL set "T=!CCL:/c ""=!"
if defined CCL if /I not "!T!"=="!CCL!" set "DBL=1"
endlocal & set "DBL=%DBL%"
if defined LOCARA_NO_PAUSE set "DBL="

if not exist "%SERVER%" (
  echo locara-server: "%SERVER%" is missing: unpack the whole archive again. 1>&2
  set "RC=2"
  goto end
)

set "NO_DOWNLOAD="
set "NO_BROWSER="
set "HTTPS="
set "SHIFTED="
if defined LOCARA_OFFLINE if not "%LOCARA_OFFLINE%"=="0" set "NO_DOWNLOAD=1"
if defined LOCARA_NO_BROWSER if not "%LOCARA_NO_BROWSER%"=="0" set "NO_BROWSER=1"
:options
if "%~1"=="--no-download" (set "NO_DOWNLOAD=1" & set "SHIFTED=1" & shift & goto options)
if "%~1"=="--no-browser" (set "NO_BROWSER=1" & set "SHIFTED=1" & shift & goto options)
if "%~1"=="--https" (set "HTTPS=1" & set "SHIFTED=1" & shift & goto options)

set "MODEL_GIVEN="
for %%A in (%*) do (
  if /I "%%~A"=="-m" set "MODEL_GIVEN=1"
  if /I "%%~A"=="--model" set "MODEL_GIVEN=1"
  if /I "%%~A"=="-mu" set "MODEL_GIVEN=1"
  if /I "%%~A"=="--model-url" set "MODEL_GIVEN=1"
  if /I "%%~A"=="-hf" set "MODEL_GIVEN=1"
  if /I "%%~A"=="-hfr" set "MODEL_GIVEN=1"
  if /I "%%~A"=="--hf-repo" set "MODEL_GIVEN=1"
  if /I "%%~A"=="--models-dir" set "MODEL_GIVEN=1"
)
set "GRAB="
for %%A in (%*) do (
  if defined GRAB (set "PORT=%%~A" & set "GRAB=")
  if "%%~A"=="--port" set "GRAB=1"
)
if defined LOCARA_MODEL_STORE (
  set "STORE=%LOCARA_MODEL_STORE%"
) else if defined LOCARA_WORK_DIR (
  set "STORE=%LOCARA_WORK_DIR%\models"
) else (
  set "STORE=%LOCALAPPDATA%\locara-build\Cache\models"
)
set "BLOBS=%STORE%\sha256"
set "MODEL=%BLOBS%\%DEFAULT_SHA256%"

rem --- HTTPS -------------------------------------------------------------------------------
set "SCHEME=http"
set "TLS_KEY="
set "TLS_CERT="
if not defined HTTPS goto tls_done
set "SCHEME=https"
if exist "%HERE%certs\server.crt" if exist "%HERE%certs\server.key" (
  set "TLS_CERT=%HERE%certs\server.crt"
  set "TLS_KEY=%HERE%certs\server.key"
  echo locara-server: HTTPS with the certificate in "%HERE%certs" 1>&2
  goto tls_done
)
for %%S in ("%STORE%\..") do set "CERTS=%%~fS\certs"
if exist "%CERTS%\server.crt" if exist "%CERTS%\server.key" goto tls_have
openssl.exe version >nul 2>nul
if errorlevel 1 (
  echo locara-server: --https needs openssl.exe on PATH to make a certificate, or server.crt and server.key in "%HERE%certs". 1>&2
  set "RC=2"
  goto end
)
echo locara-server: making a local certificate authority and a server certificate in "%CERTS%" (once) 1>&2
if not exist "%CERTS%" mkdir "%CERTS%"
(
  echo [req]
  echo distinguished_name=dn
  echo [dn]
  echo [ca]
  echo basicConstraints=critical,CA:TRUE,pathlen:0
  echo keyUsage=critical,keyCertSign,cRLSign
  echo [srv]
  echo basicConstraints=critical,CA:FALSE
  echo keyUsage=critical,digitalSignature,keyEncipherment
  echo extendedKeyUsage=serverAuth
  echo subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,DNS:%COMPUTERNAME%
) > "%CERTS%\openssl.cnf"
openssl.exe req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=locara-server local CA" -keyout "%CERTS%\ca.key" -out "%CERTS%\ca.crt" -config "%CERTS%\openssl.cnf" -extensions ca >nul 2>nul
openssl.exe req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout "%CERTS%\server.key" -out "%CERTS%\server.csr" -config "%CERTS%\openssl.cnf" >nul 2>nul
openssl.exe x509 -req -in "%CERTS%\server.csr" -CA "%CERTS%\ca.crt" -CAkey "%CERTS%\ca.key" -CAcreateserial -days 825 -sha256 -extfile "%CERTS%\openssl.cnf" -extensions srv -out "%CERTS%\server.crt" >nul 2>nul
if not exist "%CERTS%\server.crt" (
  echo locara-server: openssl.exe could not make the certificates. 1>&2
  set "RC=2"
  goto end
)
rem keys: readable by this user only
icacls "%CERTS%\ca.key" /inheritance:r /grant:r "%USERNAME%:F" >nul 2>nul
icacls "%CERTS%\server.key" /inheritance:r /grant:r "%USERNAME%:F" >nul 2>nul
:tls_have
set "TLS_CERT=%CERTS%\server.crt"
set "TLS_KEY=%CERTS%\server.key"
echo locara-server: HTTPS with the local CA "%CERTS%\ca.crt" 1>&2
openssl.exe x509 -noout -fingerprint -sha256 -in "%CERTS%\ca.crt" 1>&2
echo locara-server: trust it once: double-click ca.crt ^> Install Certificate ^> Local Machine ^> Trusted Root Certification Authorities. 1>&2
:tls_done
if "%URL_HOST%"=="0.0.0.0" set "URL_HOST=127.0.0.1"
set "URL=%SCHEME%://%URL_HOST%:%PORT%/"

if defined MODEL_GIVEN goto run_as_given
if defined LOCARA_MODEL goto run_env_model

rem --- the default model: from the store, downloaded and verified on the first run ----------
if exist "%MODEL%" (
  for %%F in ("%MODEL%") do if "%%~zF"=="%DEFAULT_SIZE%" goto run_default
)
if defined NO_DOWNLOAD goto no_model
call :fetch_default
if "%RC%"=="20" goto no_model
if not "%RC%"=="0" goto end
goto run_default

:run_default
call :browser
if defined SHIFTED goto run_default_shifted
"%SERVER%" -m "%MODEL%" --alias "%DEFAULT_ID%"{% for a in model_args %} {{ a|cmdarg }}{% endfor %} %*
set "RC=%ERRORLEVEL%"
goto end
:run_default_shifted
if defined TLS_KEY goto run_default_shifted_tls
"%SERVER%" -m "%MODEL%" --alias "%DEFAULT_ID%"{% for a in model_args %} {{ a|cmdarg }}{% endfor %} %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end
:run_default_shifted_tls
"%SERVER%" -m "%MODEL%" --alias "%DEFAULT_ID%"{% for a in model_args %} {{ a|cmdarg }}{% endfor %} --ssl-key-file "%TLS_KEY%" --ssl-cert-file "%TLS_CERT%" %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end

:run_env_model
if not exist "%LOCARA_MODEL%" (
  echo locara-server: LOCARA_MODEL="%LOCARA_MODEL%": no such file. 1>&2
  set "RC=2"
  goto end
)
call :browser
if defined TLS_KEY goto run_env_model_tls
if defined SHIFTED goto run_env_model_shifted
"%SERVER%" -m "%LOCARA_MODEL%" %*
set "RC=%ERRORLEVEL%"
goto end
:run_env_model_shifted
"%SERVER%" -m "%LOCARA_MODEL%" %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end
:run_env_model_tls
"%SERVER%" -m "%LOCARA_MODEL%" --ssl-key-file "%TLS_KEY%" --ssl-cert-file "%TLS_CERT%" %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end

:run_as_given
call :browser
if defined TLS_KEY goto run_as_given_tls
if defined SHIFTED goto run_as_given_shifted
"%SERVER%" %*
set "RC=%ERRORLEVEL%"
goto end
:run_as_given_shifted
"%SERVER%" %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end
:run_as_given_tls
"%SERVER%" --ssl-key-file "%TLS_KEY%" --ssl-cert-file "%TLS_CERT%" %1 %2 %3 %4 %5 %6 %7 %8 %9
set "RC=%ERRORLEVEL%"
goto end

rem --- print the URL; open a browser once /health answers (a second cmd.exe polls) ----------
:browser
echo locara-server: starting; the UI will be at "%URL%" 1>&2
if defined NO_BROWSER exit /b 0
curl.exe --version >nul 2>nul
if errorlevel 1 exit /b 0
start "" /b cmd.exe /d /c call "%SELF%" :wait_then_open
exit /b 0

:wait_then_open
set /a "TRIES=0"
:wait_loop
curl.exe -fsSk --max-time 2 -o NUL "%URL%health" >nul 2>nul
if not errorlevel 1 goto wait_ready
set /a "TRIES+=1"
if %TRIES% GEQ 300 exit /b 0
ping -n 2 127.0.0.1 >nul 2>nul
goto wait_loop
:wait_ready
echo locara-server: ready: "%URL%" - opening it in the browser 1>&2
start "" "%URL%"
exit /b 0

rem --- download: resumable, size + SHA-256 verified, atomically renamed into the store -------
:fetch_default
if not exist "%BLOBS%" mkdir "%BLOBS%" >nul 2>nul
if not exist "%BLOBS%\" (
  echo locara-server: cannot create the model store "%BLOBS%": set LOCARA_MODEL_STORE to a folder you can write to. 1>&2
  set "RC=2"
  exit /b 2
)
set "PART=%MODEL%.part"
rem (each tool is asked for its version: a missing one fails, and so do the stubs some systems have)
set "DL="
curl.exe --version >nul 2>nul
if not errorlevel 1 set "DL=curl"
if defined DL goto have_downloader
set "PSV="
for /f "usebackq delims=" %%V in (`powershell.exe -NoProfile -NonInteractive -Command "$PSVersionTable.PSVersion.Major" 2^>nul`) do set "PSV=%%V"
if defined PSV (echo %PSV%| findstr /r "^[0-9][0-9]*$" >nul && set "DL=powershell")
:have_downloader
if not defined DL (
  echo locara-server: neither curl.exe nor PowerShell is available to download the model. 1>&2
  set "RC=20"
  exit /b 20
)
set "VERIFY_FAILED="
{%- for u in model_urls %}
set "SRC={{ u|cmd }}"
call :try_url
if "%RC%"=="0" exit /b 0
if "%RC%"=="2" exit /b 2
{%- endfor %}
if defined VERIFY_FAILED (
  echo locara-server: no URL gave the file with SHA-256 "%DEFAULT_SHA256%": nothing was stored or run. 1>&2
  set "RC=8"
  exit /b 8
)
echo locara-server: downloading "%DEFAULT_ID%" failed from every URL: check the network and run this again; it resumes. 1>&2
set "RC=9"
exit /b 9

:try_url
set "RC=1"
set "HAVE=0"
set "OLDSRC="
if exist "%PART%.source" set /p OLDSRC=<"%PART%.source"
rem compared with delayed expansion and gotos: wine's cmd.exe mis-parses `&` and `(` of a quoted
rem value inside a parenthesised block
set "SAME="
setlocal EnableDelayedExpansion
if defined OLDSRC if "!OLDSRC!"=="!SRC!" set "SAME=1"
endlocal & set "SAME=%SAME%"
if not exist "%PART%" goto part_checked
if not defined SAME goto part_discard
for %%F in ("%PART%") do set "HAVE=%%~zF"
goto part_checked
:part_discard
del /f /q "%PART%" >nul 2>nul
:part_checked
rem sizes compared as zero-padded strings (cmd's numbers stop at 2 GiB)
set "PAD_HAVE=0000000000000000%HAVE%"
set "PAD_SIZE=0000000000000000%DEFAULT_SIZE%"
set "PAD_HAVE=%PAD_HAVE:~-16%"
set "PAD_SIZE=%PAD_SIZE:~-16%"
if "%PAD_HAVE%" GTR "%PAD_SIZE%" (
  del /f /q "%PART%" >nul 2>nul
  set "HAVE=0"
  set "PAD_HAVE=0000000000000000"
)
rem disk space (from `dir`): what is still to come
set "FREE="
for /f "tokens=3" %%a in ('dir /-c "%BLOBS%" 2^>nul ^| find "bytes free"') do set "FREE=%%a"
if not defined FREE goto space_ok
set "PAD_FREE=0000000000000000%FREE%"
set "PAD_FREE=%PAD_FREE:~-16%"
if "%PAD_FREE%" GEQ "%PAD_SIZE%" goto space_ok
echo locara-server: not enough disk space in "%BLOBS%": "%DEFAULT_FILE%" needs %DEFAULT_SIZE% bytes, %FREE% are free. 1>&2
echo locara-server: free some space, or set LOCARA_MODEL_STORE to a folder on a bigger disk, then run this again. 1>&2
set "RC=2"
exit /b 2
:space_ok
rem (with a line end: wine's `set /p` drops the last character of a file without one)
< nul > "%PART%.source" set /p "=%SRC%"
>> "%PART%.source" echo.
if "%PAD_HAVE%"=="%PAD_SIZE%" goto downloaded
if not "%HAVE%"=="0" goto say_resuming
echo locara-server: downloading "%DEFAULT_FILE%" (%DEFAULT_SIZE% bytes) from "%SRC%" with %DL% 1>&2
goto said
:say_resuming
echo locara-server: resuming "%DEFAULT_FILE%" at %HAVE% of %DEFAULT_SIZE% bytes from "%SRC%" 1>&2
:said
if "%DL%"=="powershell" goto download_powershell
curl.exe -fL --proto "=https,http,file" --connect-timeout 20 --speed-limit 1 --speed-time 60 --retry 2 -# -C - -o "%PART%" "%SRC%"
set "DLRC=%ERRORLEVEL%"
if not "%DLRC%"=="33" goto downloaded_check
echo locara-server: the server cannot resume this download; starting over 1>&2
del /f /q "%PART%" >nul 2>nul
curl.exe -fL --proto "=https,http,file" --connect-timeout 20 --speed-limit 1 --speed-time 60 --retry 2 -# -o "%PART%" "%SRC%"
set "DLRC=%ERRORLEVEL%"
goto downloaded_check
:download_powershell
del /f /q "%PART%" >nul 2>nul
powershell.exe -NoProfile -NonInteractive -Command "$ProgressPreference='SilentlyContinue'; Invoke-WebRequest -UseBasicParsing -Uri $env:SRC -OutFile $env:PART"
set "DLRC=%ERRORLEVEL%"
:downloaded_check
if "%DLRC%"=="0" goto downloaded
echo locara-server: download from "%SRC%" failed; what arrived is kept, so running this again resumes it. 1>&2
set "RC=9"
exit /b 9
:downloaded
set "GOTSIZE=missing"
if exist "%PART%" for %%F in ("%PART%") do set "GOTSIZE=%%~zF"
if "%GOTSIZE%"=="%DEFAULT_SIZE%" goto size_ok
echo locara-server: "%SRC%" gave %GOTSIZE% of %DEFAULT_SIZE% bytes; running this again resumes it. 1>&2
set "RC=9"
exit /b 9
:size_ok
echo locara-server: verifying the SHA-256 of "%DEFAULT_FILE%" 1>&2
set "GOT="
for /f "usebackq skip=1 delims=" %%H in (`certutil.exe -hashfile "%PART%" SHA256 2^>nul`) do if not defined GOT set "GOT=%%H"
if defined GOT set "GOT=%GOT: =%"
if /I "%GOT%"=="%DEFAULT_SHA256%" goto verified
set "GOT="
for /f "usebackq delims=" %%H in (`powershell.exe -NoProfile -NonInteractive -Command "(Get-FileHash -Algorithm SHA256 -LiteralPath $env:PART).Hash" 2^>nul`) do if not defined GOT set "GOT=%%H"
if /I "%GOT%"=="%DEFAULT_SHA256%" goto verified
set "GOT2="
sha256sum.exe --version >nul 2>nul
if not errorlevel 1 for /f "usebackq tokens=1" %%H in (`sha256sum.exe -b "%PART%" 2^>nul`) do if not defined GOT2 set "GOT2=%%H"
if defined GOT2 set "GOT=%GOT2:\=%"
if /I "%GOT%"=="%DEFAULT_SHA256%" goto verified
del /f /q "%PART%" "%PART%.source" >nul 2>nul
set "VERIFY_FAILED=1"
if defined GOT goto refused_mismatch
echo locara-server: REFUSED: no tool computed a SHA-256 (certutil, PowerShell Get-FileHash, sha256sum.exe); the download was deleted, never used. 1>&2
set "RC=8"
exit /b 8
:refused_mismatch
echo locara-server: REFUSED: "%SRC%" sent a file whose SHA-256 is "%GOT%", not "%DEFAULT_SHA256%"; deleted, never used. 1>&2
set "RC=8"
exit /b 8
:verified
move /y "%PART%" "%MODEL%" >nul
del /f /q "%PART%.source" "%PART%.validator" >nul 2>nul
> "%MODEL%.json.tmp" echo {
>> "%MODEL%.json.tmp" echo   "file": "%DEFAULT_FILE%",
>> "%MODEL%.json.tmp" echo   "id": "%DEFAULT_ID%",
>> "%MODEL%.json.tmp" echo   "license": "%DEFAULT_LICENSE%",
>> "%MODEL%.json.tmp" echo   "sha256": "%DEFAULT_SHA256%",
>> "%MODEL%.json.tmp" echo   "size": %DEFAULT_SIZE%,
>> "%MODEL%.json.tmp" echo   "url": "%SRC%"
>> "%MODEL%.json.tmp" echo }
move /y "%MODEL%.json.tmp" "%MODEL%.json" >nul
echo locara-server: stored the verified "%DEFAULT_FILE%" as "%MODEL%" 1>&2
set "RC=0"
exit /b 0

:no_model
echo locara-server: no model to run. 1>&2
echo. 1>&2
echo The default model, "%DEFAULT_ID%" ("%DEFAULT_FILE%", %DEFAULT_SIZE% bytes), is not in the model store "%STORE%". 1>&2
echo Run this launcher again without --no-download / LOCARA_OFFLINE=1 (it downloads and verifies it), or fetch it: 1>&2
echo. 1>&2
echo     locara-build models fetch "%DEFAULT_ID%" --manifest "%HERE%models\manifest.json" 1>&2
echo. 1>&2
echo or download it yourself, check its SHA-256 and pass it with -m: 1>&2
echo. 1>&2
echo     curl.exe -L -o "%DEFAULT_FILE%" "%DEFAULT_URL%" 1>&2
echo     certutil -hashfile "%DEFAULT_FILE%" SHA256     (must print "%DEFAULT_SHA256%") 1>&2
echo     "%~f0" -m "%DEFAULT_FILE%" 1>&2
echo. 1>&2
echo Other models: models\manifest.json. Any GGUF file works: "%~f0" -m FILE 1>&2
set "RC=2"
goto end

:end
if "%RC%"=="0" exit /b 0
if defined DBL (
  echo. 1>&2
  echo locara-server: stopped with exit code %RC% ^(see above^). Press a key to close this window. 1>&2
  pause >nul
)
exit /b %RC%
