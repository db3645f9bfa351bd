namespace SystemContainers.Engine.Migration;

/// <summary>
/// What criu and this kernel can do together, from its FEATURE_CHECK answer: memory tracking
/// (soft-dirty, for pre-copy rounds), lazy pages (userfaultfd, for post-copy) and a pidfd store.
/// </summary>
public sealed record CriuFeatures(bool MemoryTracking, bool LazyPages, bool PidfdStore);
