using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using Xunit;

namespace SystemContainers.Engine.Tests;

public class ScInitTests
{
    /// <summary>
    /// A helper that exits before it has read the plan breaks the daemon's write (EPIPE): the error
    /// is then the helper's own outcome, and the helper is reaped, not the pipe error with a zombie left.
    /// </summary>
    [Fact]
    public void AHelperThatExitsBeforeReadingThePlanIsReapedAndItsExitIsTheError()
    {
        using var initHelper = new ScInit("/bin/false");
        using var console = Sys.Open("/dev/null", Libc.O_RDWR | Libc.O_CLOEXEC);
        // Larger than a socket buffer, so the write is still under way when the helper exits.
        var plan = new LaunchPlan().Add("padding", new string('a', 4 << 20));
        var e = Assert.Throws<ScInitException>(() => initHelper.Create(plan, console));
        Assert.Equal("sc-init exited with status 1 before it read all it was sent", e.Message);
    }
}
