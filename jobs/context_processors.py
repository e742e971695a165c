from django.conf import settings


def studio(request):
    return {"sandbox_mode": not settings.PIXELBYTE_API_KEY}
