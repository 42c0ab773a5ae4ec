from locara_build.cli import main

main()
