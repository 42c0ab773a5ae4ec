@echo off
rem {{ artifact }}: start llama-server with this folder's defaults (llama-server.args) and a model.
rem
rem   run.cmd                     the default model ({{ model_label }}) from the model store
rem   run.cmd -m FILE [ARGS...]   a GGUF model file; any other llama-server arguments may follow
rem   set LOCARA_MODEL=FILE       the same, from the environment
rem
rem Arguments given here win over llama-server.args (host {{ host }}, port {{ port }}, the UI in ui\).
rem Model store: %LOCARA_MODEL_STORE%, else %LOCARA_WORK_DIR%\models, else
rem %LOCALAPPDATA%\locara-build\Cache\models (where `locara-build models fetch` puts models).
setlocal EnableExtensions
set "HERE=%~dp0"
set "SERVER=%HERE%bin\llama-server.exe"
set "DEFAULT_ID={{ model_id|cmd }}"
set "DEFAULT_SHA256={{ model_sha256|cmd }}"
set "DEFAULT_FILE={{ model_file|cmd }}"
set "DEFAULT_URL={{ model_url|cmd }}"

if not exist "%SERVER%" (
  echo locara-server: %SERVER% is missing: unpack the whole archive again. 1>&2
  exit /b 2
)

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
if defined MODEL_GIVEN goto run_as_given

if defined LOCARA_MODEL goto run_env_model

if defined LOCARA_MODEL_STORE (
  set "STORE=%LOCARA_MODEL_STORE%"
) else if defined LOCARA_WORK_DIR (
  set "STORE=%LOCARA_WORK_DIR%\models"
) else (
  set "STORE=%LOCALAPPDATA%\locara-build\Cache\models"
)
set "MODEL=%STORE%\sha256\%DEFAULT_SHA256%"
if not exist "%MODEL%" goto no_model
"%SERVER%" -m "%MODEL%" --alias "%DEFAULT_ID%"{% for a in model_args %} {{ a|cmdarg }}{% endfor %} %*
exit /b %ERRORLEVEL%

:run_env_model
if not exist "%LOCARA_MODEL%" (
  echo locara-server: LOCARA_MODEL=%LOCARA_MODEL%: no such file. 1>&2
  exit /b 2
)
"%SERVER%" -m "%LOCARA_MODEL%" %*
exit /b %ERRORLEVEL%

:run_as_given
"%SERVER%" %*
exit /b %ERRORLEVEL%

:no_model
echo locara-server: no model to run. 1>&2
echo. 1>&2
echo The default model, %DEFAULT_ID% (%DEFAULT_FILE%), is not in the model store (%STORE%). Either fetch it: 1>&2
echo. 1>&2
echo     locara-build models fetch %DEFAULT_ID% --manifest "%HERE%models\manifest.json" 1>&2
echo. 1>&2
echo or download it yourself, check its SHA-256 and pass it with -m: 1>&2
echo. 1>&2
echo     curl.exe -L -o "%DEFAULT_FILE%" "%DEFAULT_URL%" 1>&2
echo     certutil -hashfile "%DEFAULT_FILE%" SHA256     (must print %DEFAULT_SHA256%) 1>&2
echo     "%~f0" -m "%DEFAULT_FILE%" 1>&2
echo. 1>&2
echo Other models: models\manifest.json. Any GGUF file works: "%~f0" -m FILE 1>&2
exit /b 2
