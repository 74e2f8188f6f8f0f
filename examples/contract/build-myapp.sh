#!/bin/sh
set -eu
echo "build myapp into ${ROOT}"
