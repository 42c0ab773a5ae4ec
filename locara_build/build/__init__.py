"""Recipes -> plan -> CMake builds: recipes, the plan, platforms, backends, toolchains, doctor, the build."""
