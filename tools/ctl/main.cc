// tetherctl: the operator's command line; everything is in tools/ctl/ctl.cc.
#include <iostream>

#include "tools/ctl/ctl.h"

int main(int argc, char** argv) { return tether::ctl::RunCtl(argc, argv, std::cout, std::cerr); }
