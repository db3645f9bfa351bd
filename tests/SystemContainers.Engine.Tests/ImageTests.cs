using SystemContainers.Engine.Images;

namespace SystemContainers.Engine.Tests;

public class RootfsInspectorTests
{
    [Fact]
    public void ResolvesAbsoluteAndRelativeLinksInsideTheRoot()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.Combine("usr", "lib", "systemd"));
        File.WriteAllText(dir.Combine("usr", "lib", "systemd", "systemd"), "");
        Directory.CreateDirectory(dir.Combine("usr", "sbin"));
        File.CreateSymbolicLink(dir.Combine("sbin"), "usr/sbin");
        File.CreateSymbolicLink(dir.Combine("usr", "sbin", "init"), "/usr/lib/systemd/systemd");
        Assert.Equal(dir.Combine("usr", "lib", "systemd", "systemd"), RootfsInspector.Resolve(dir.Path, "/sbin/init"));
        Assert.Equal(InitKinds.Systemd, RootfsInspector.InitKind(dir.Path));
    }

    [Fact]
    public void NeverLeavesTheRoot()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.Combine("sbin"));
        // On the host /etc/hostname exists; inside this root it does not.
        File.CreateSymbolicLink(dir.Combine("sbin", "init"), "../../../../../etc/hostname");
        Assert.Null(RootfsInspector.Resolve(dir.Path, "sbin/init"));
        Assert.Equal("", RootfsInspector.InitKind(dir.Path));
    }

    [Fact]
    public void StopSignalsFollowTheInit()
    {
        Assert.Equal(37, InitKinds.StopSignal(InitKinds.Systemd));
        Assert.Equal(12, InitKinds.StopSignal(InitKinds.Busybox));
        Assert.Equal(30, InitKinds.StopSignal(InitKinds.Other));
    }
}

public class BuilderTests
{
    [Fact]
    public void DetectsStaticAndDynamicBinaries()
    {
        Assert.False(BusyboxImageBuilder.IsDynamic("/bin/busybox"));
        Assert.True(BusyboxImageBuilder.IsDynamic("/bin/ls"));
    }

    [Fact]
    public void BusyboxTarballIsDeterministic()
    {
        using var dir = new TempDir();
        BusyboxImageBuilder.Build("/bin/busybox", dir.Combine("a.tar"));
        BusyboxImageBuilder.Build("/bin/busybox", dir.Combine("b.tar"));
        Assert.Equal(File.ReadAllBytes(dir.Combine("a.tar")), File.ReadAllBytes(dir.Combine("b.tar")));
        using var tar = File.OpenRead(dir.Combine("a.tar"));
        Directory.CreateDirectory(dir.Combine("rootfs"));
        var unpacked = RootfsExtractor.Extract(new TarballReader(tar, ImportLimits.Default), dir.Combine("rootfs"));
        Assert.Empty(unpacked.DroppedEntries);
        Assert.Equal(InitKinds.Busybox, RootfsInspector.InitKind(dir.Combine("rootfs")));
    }

    [Fact]
    public void FindsTheHostMirrorInBothAptFormats()
    {
        using var apt = new TempDir();
        Directory.CreateDirectory(apt.Combine("sources.list.d"));
        File.WriteAllText(apt.Combine("sources.list.d", "debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n");
        Assert.Equal("http://mirror.example/debian", DebootstrapImageBuilder.HostMirror(apt.Path));
        using var old = new TempDir();
        File.WriteAllText(old.Combine("sources.list"), "# comment\ndeb [arch=amd64] http://archive.example/ubuntu jammy main\n");
        Assert.Equal("http://archive.example/ubuntu", DebootstrapImageBuilder.HostMirror(old.Path));
        using var none = new TempDir();
        Assert.Null(DebootstrapImageBuilder.HostMirror(none.Path));
    }

    [Fact]
    public void CacheKeyDependsOnEveryInput()
    {
        string a = DebootstrapImageBuilder.CacheKey("bookworm", "http://m/debian");
        Assert.Equal(a, DebootstrapImageBuilder.CacheKey("bookworm", "http://m/debian"));
        Assert.NotEqual(a, DebootstrapImageBuilder.CacheKey("trixie", "http://m/debian"));
        Assert.NotEqual(a, DebootstrapImageBuilder.CacheKey("bookworm", "http://n/debian"));
    }

    [Theory]
    [InlineData("Bookworm")]
    [InlineData("../x")]
    [InlineData("a b")]
    public void RefusesBadReleases(string release)
    {
        var e = Assert.Throws<EngineException>(() => DebootstrapImageBuilder.BuildAsync(release, "http://m/debian", "/nonexistent", null, default).GetAwaiter().GetResult());
        Assert.Equal("InvalidRelease", e.Reason);
    }
}
