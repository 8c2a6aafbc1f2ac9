// Arguments and environment set by the build system reach the program
// intact: exactly the arguments "--name" "two words", and EXAMPLE_GREETING.
#include <cstdlib>
#include <cstring>
#include <iostream>

int main(int argc, char **argv)
{
  const char *greeting = std::getenv("EXAMPLE_GREETING");
  bool ok = argc == 3 && std::strcmp(argv[1], "--name") == 0 && std::strcmp(argv[2], "two words") == 0 && greeting &&
            std::strcmp(greeting, "hello from the build system") == 0;
  for (int i = 1; i < argc; i++)
    std::cout << "argv[" << i << "] = '" << argv[i] << "'\n";
  std::cout << "EXAMPLE_GREETING = '" << (greeting ? greeting : "(unset)") << "'\n";
  return ok ? 0 : 1;
}
