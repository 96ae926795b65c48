#!/bin/sh
# Turns a text file into a C string: embed.sh NAME FILE > out.c
set -e
printf '/* Generated from %s by core/embed.sh. */\nconst char %s[] =\n' "$2" "$1"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$/\\n"/' "$2"
printf '\t"";\n'
