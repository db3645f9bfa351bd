namespace SystemContainers.Engine.Containers;

/// <summary>A container's gate while a stream out of or into it (a file copy, an export) holds it, released once.</summary>
internal sealed class GateLease(SemaphoreSlim gate) : IDisposable
{
    private int _released;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) gate.Release();
    }
}
