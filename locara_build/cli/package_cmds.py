"""(commands are added here by their pipeline area)"""
