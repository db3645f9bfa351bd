using System.Text.Json;
using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Daemon;

/// <summary>Maps engine failures to HTTP statuses and the stable error ids the cmdlets put in ErrorRecords.</summary>
public static class ErrorMapping
{
    public static (int Status, string Id) Classify(Exception e) => e switch
    {
        EngineException ee => (ee.Kind switch
        {
            FailureKind.InvalidArgument => 400,
            FailureKind.NotFound => 404,
            FailureKind.Conflict => 409,
            FailureKind.Forbidden => 403,
            _ => 500,
        }, ee.Reason),
        NativeException => (500, "SystemError"),
        BadHttpRequestException b => (b.StatusCode, b.StatusCode == 413 ? "RequestTooLarge" : "InvalidRequest"),
        JsonException => (400, "InvalidRequest"),
        OperationCanceledException => (400, "Cancelled"),
        _ => (500, "InternalError"),
    };

    public static IResult ToResult(Exception e)
    {
        var (status, id) = Classify(e);
        return Results.Json(new ApiResponse("error", ErrorCode: status, Error: e.Message, ErrorId: id), Wire.Json, statusCode: status);
    }
}
